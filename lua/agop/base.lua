-- agop.base: the Lua half of the `agop` module, applied once to the C module table.
-- Submodules load on first use (agop.nn, agop.plot, ...), so `agop` starts fast.
local function extend(agop)
  setmetatable(agop, {
    __index = function(t, k)
      if type(k) ~= 'string' or k:find('[^%w_]') then return nil end
      local name = 'agop.' .. k
      if not package.searchpath(name, package.path) then return nil end
      local mod = require(name)
      rawset(t, k, mod)
      return mod
    end,
    -- the REPL's Tab completion lists the submodules before they are loaded
    __complete = function()
      local names = {}
      for _, dir in ipairs(agop.lua_dirs()) do
        local p = io.popen(string.format("ls '%s/agop' 2>/dev/null", dir))
        for f in p:lines() do
          local n = f:match('^([%w_]+)%.lua$')
          if n and n ~= 'base' then names[#names + 1] = n end
        end
        p:close()
      end
      return names
    end,
  })

  --- The folders on package.path that hold agop's Lua files.
  function agop.lua_dirs()
    local dirs = {}
    for tmpl in package.path:gmatch('[^;]+') do
      local dir = tmpl:match('^(.*)/%?%.lua$')
      local f = dir and io.open(dir .. '/agop/base.lua')
      if f then
        f:close()
        dirs[#dirs + 1] = dir
        break
      end
    end
    return dirs
  end

  --- Draws a matrix or image in the terminal (see agop.plot.show).
  function agop.show(m, opts) return require('agop.plot').show(m, opts) end

  --- Writes tensors (a name -> tensor map or an ordered {{name=, tensor=}} list) to a
  --- .safetensors file, or one tensor to a .npy file, chosen by the extension.
  function agop.save(path, tensors, metadata)
    local files = require('agop.files')
    if type(path) == 'string' and path:match('%.npy$') then
      return files.save_npy(path, tensors, metadata)
    end
    return files.save_safetensors(path, tensors, metadata)
  end

  --- Reads a .safetensors file (tensors, metadata, ordered names) or a .npy file (tensor).
  function agop.load(path)
    local files = require('agop.files')
    if type(path) == 'string' and path:match('%.npy$') then return files.load_npy(path) end
    return files.load_safetensors(path)
  end
end

return extend
