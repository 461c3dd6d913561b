-- The REPL's logic without a terminal (lua/agop/repl.lua): Tab completion, continuation
-- lines, and how results are compiled and shown.
local lu = require('luaunit')
local repl = require('agop.repl')

local function set(list)
  local s = {}
  for _, x in ipairs(list) do s[x] = true end
  return s
end

-- a small class hierarchy as nn.lua builds them: instance -> Class -> Base via __index
local function class_env()
  local Base = {}
  Base.__index = Base
  function Base:forward() end
  function Base:parameters() end
  Base.name = 'base'
  local Conv = setmetatable({}, {__index = Base})
  Conv.__index = Conv
  function Conv:nfm() end
  function Conv:forward_patches() end
  local conv = setmetatable({weight = 1, stride = 2}, Conv)
  return {conv = conv, agop = agop}
end

TestReplComplete = {}

function TestReplComplete:test_tensor_methods_follow_the_metatable()
  local env = {t = agop.zeros(2, 3)}
  local got = repl.complete('t:ad', env)
  local s = set(got)
  lu.assertTrue(s['t:add'] and s['t:add_'] and s['t:addcmul_'], table.concat(got, ' '))
  for _, c in ipairs(got) do lu.assertStrContains(c, 't:ad') end
  -- the methods really exist under those names
  for _, c in ipairs(got) do lu.assertEquals(type(env.t[c:sub(3)]), 'function') end
end

function TestReplComplete:test_agop_functions()
  local got = repl.complete('agop.ze', {agop = agop})
  lu.assertTrue(set(got)['agop.zeros'], table.concat(got, ' '))
  for _, c in ipairs(got) do lu.assertEquals(c:sub(1, 7), 'agop.ze') end
end

function TestReplComplete:test_keeps_the_start_of_the_line()
  local got = repl.complete('x = agop.zer', {agop = agop})
  lu.assertTrue(set(got)['x = agop.zeros'], table.concat(got, ' '))
  got = repl.complete('print(s..agop.zer', {agop = agop})
  lu.assertTrue(set(got)['print(s..agop.zeros'], table.concat(got, ' '))
end

function TestReplComplete:test_fields_follow_chained_index_tables()
  local env = class_env()
  lu.assertEquals(repl.complete('conv.forw', env), {'conv.forward', 'conv.forward_patches'})
  lu.assertEquals(repl.complete('conv.st', env), {'conv.stride'})
  lu.assertEquals(repl.complete('conv.na', env), {'conv.name'}) -- two levels up
  lu.assertEquals(repl.complete('conv:par', env), {'conv:parameters'})
end

function TestReplComplete:test_colon_lists_only_functions()
  local env = class_env()
  local s = set(repl.complete('conv:', env))
  lu.assertTrue(s['conv:nfm'] and s['conv:forward'])
  lu.assertNil(s['conv:weight'])
  lu.assertNil(s['conv:name'])
  lu.assertNil(s['conv:__index']) -- metamethods stay hidden
  lu.assertTrue(set(repl.complete('conv.__', env))['conv.__index']) -- unless asked for
end

function TestReplComplete:test_globals_and_keywords()
  local env = setmetatable({myvar = 1}, {__index = _G})
  lu.assertEquals(repl.complete('myv', env), {'myvar'})
  local s = set(repl.complete('pr', env))
  lu.assertTrue(s['print'])
  lu.assertTrue(set(repl.complete('x = fun', env))['x = function'])
  lu.assertTrue(set(repl.complete('ret', env))['return'])
end

function TestReplComplete:test_string_methods()
  lu.assertEquals(repl.complete('s:upp', {s = 'abc'}), {'s:upper'})
end

function TestReplComplete:test_nothing_where_names_cannot_be()
  local env = {agop = agop}
  lu.assertEquals(repl.complete('print("agop.ze', env), {}) -- inside a string
  lu.assertEquals(repl.complete("x = 'a' -- agop.ze", env), {}) -- in a comment
  lu.assertEquals(repl.complete('x = 1.5', env), {}) -- a number
  lu.assertEquals(repl.complete('f().ze', env), {}) -- would need a call
  lu.assertEquals(repl.complete('nothere.x', env), {})
  lu.assertEquals(repl.complete('agop.zeros.x', env), {}) -- a function has no fields
end

function TestReplComplete:test_an_erroring_index_does_not_raise()
  local bad = setmetatable({}, {__index = function() error('no') end})
  lu.assertEquals(repl.complete('bad.x.y', {bad = bad}), {})
end

TestReplIncomplete = {}

function TestReplIncomplete:test_statements_cut_short_ask_for_more()
  for _, chunk in ipairs({'for i = 1, 3 do', 'x = ', 'f(', 'x = {', 's = [[abc',
                          'function f()\n  return 1', 'if x then'}) do
    lu.assertTrue(repl.incomplete(chunk), chunk)
  end
end

function TestReplIncomplete:test_complete_or_wrong_chunks_do_not()
  for _, chunk in ipairs({'x = 1', 'for i = 1, 3 do end', 'x = = 1', 'end', '1 +* 2', ''}) do
    lu.assertFalse(repl.incomplete(chunk), chunk)
  end
end

TestReplCompile = {}

function TestReplCompile:test_expressions_return_their_values()
  local f = repl.compile('1 + 1')
  lu.assertEquals(f(), 2)
  lu.assertEquals(repl.format(repl.compile('1, nil, "a"')()), '1\tnil\ta')
  lu.assertEquals(repl.format(repl.compile('agop.zeros(1, 2):size(2)')()), '2')
end

function TestReplCompile:test_statements_run_and_show_nothing()
  local env = {}
  local f = repl.compile('x = 5', env)
  lu.assertNil(repl.format(f()))
  lu.assertEquals(env.x, 5)
end

function TestReplCompile:test_errors_say_whether_more_lines_help()
  local f, err, more = repl.compile('for i = 1, 2 do')
  lu.assertNil(f)
  lu.assertStrContains(err, '<eof>')
  lu.assertTrue(more)
  f, err, more = repl.compile('x = = 1')
  lu.assertNil(f)
  lu.assertStrContains(err, "unexpected symbol near '='")
  lu.assertFalse(more)
end

function TestReplCompile:test_format_uses_tostring()
  local obj = setmetatable({}, {__tostring = function() return 'OBJ' end})
  lu.assertEquals(repl.format(obj, true), 'OBJ\ttrue')
  lu.assertEquals(repl.format(nil), 'nil')
  lu.assertNil(repl.format())
  lu.assertStrContains(repl.format(agop.zeros(2)), 'agop.Tensor')
end

function TestReplComplete:test_complete_metamethod_names_lazy_fields()
  local lazy = setmetatable({loaded = 1}, {
    __index = function(t, k) if k == 'later' then return {} end end,
    __complete = function() return {'later', 'loaded'} end,
  })
  lu.assertEquals(repl.complete('m.l', {m = lazy}), {'m.later', 'm.loaded'})
end
