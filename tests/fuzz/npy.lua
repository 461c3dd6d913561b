-- Fuzz target: a .npy file (agop.files.load_npy: the header parser in Lua, the data through
-- agop.read_raw). A tensor it returns must hold exactly the file's data bytes.
local files = require('agop.files')
local common = dofile(fuzz.here .. '/common.lua')

return function(data)
  local path = common.write('input.npy', data)
  local ok, t, descr = pcall(files.load_npy, path)
  if not ok then return end
  local esize = descr == '<f8' and 8 or 4
  if t:numel() * esize > #data then
    fuzz.fail(string.format('load_npy returned %d elements of %s from %d bytes', t:numel(),
      descr, #data))
  end
end
