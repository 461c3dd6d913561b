-- Shared by the LuaUnit files: error assertions, temporary folders, files, and running
-- the agoplua executable as a subprocess.
local lu = require('luaunit')

local helpers = {}

--- Asserts that f(...) raises an error whose message contains `pattern` (plain text);
--- returns the message.
function helpers.errors_with(pattern, f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, 'expected an error matching ' .. pattern)
  lu.assertStrContains(tostring(err), pattern)
  return tostring(err)
end

--- A new empty temporary folder.
function helpers.make_dir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end

function helpers.write(path, bytes)
  local f = assert(io.open(path, 'wb'))
  f:write(bytes)
  f:close()
end

--- The agoplua executable running this test (the lowest index of `arg`), absolute.
function helpers.exe()
  local i = -1
  while arg[i - 1] do i = i - 1 end
  local e = assert(arg[i], 'cannot find the agoplua executable in arg')
  if e:sub(1, 1) ~= '/' and e:find('/') then e = os.getenv('PWD') .. '/' .. e end
  return e
end

--- Runs a shell command; returns its output (stdout and stderr) and true on exit 0.
function helpers.run(cmd)
  local p = io.popen(cmd .. ' 2>&1')
  local out = p:read('a')
  local ok = p:close()
  return out, ok == true
end

return helpers
