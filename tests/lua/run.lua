-- Runs one LuaUnit test file under agoplua and prints "lua:<file> N passed, N failed".
--   agoplua tests/lua/run.lua tests/lua/test_tensor.lua [luaunit options]
local lu = require('luaunit')
local file = assert(arg[1], 'usage: agoplua tests/lua/run.lua tests/lua/test_x.lua')
local here = file:match('^(.*)/[^/]*$') or '.'
package.path = here .. '/?.lua;' .. package.path
local chunk = assert(loadfile(file))
chunk() -- a test file defines Test* globals, which LuaUnit finds
local runner = lu.LuaUnit.new()
-- explicit arguments, so LuaUnit does not read the global `arg` (our file name)
local extra = {'-o', 'text'}
for i = 2, #arg do extra[#extra + 1] = arg[i] end
local failures = runner:runSuite(table.unpack(extra))
local r = runner.result
local npass = r.runCount - r.notSuccessCount - (r.skippedCount or 0)
print(string.format('lua:%s %d passed, %d failed', file, npass, r.notSuccessCount))
os.exit(failures == 0 and 0 or 1)
