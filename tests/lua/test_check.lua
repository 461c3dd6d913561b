-- check and util.options: the library's argument checks and options parser, and their
-- one error policy ("who: message", level 0: no file:line position).
local lu = require('luaunit')
local agop = require('agop')
local check = require('agop.check')
local util = require('agop.util')

-- the message of f(...)'s error (which must happen). f is called from a Lua function
-- (not a tail call), so an error raised at level 2 or 3 would carry a file:line here.
local function err_of(f, ...)
  local args = table.pack(...)
  local ok, e = pcall(function()
    local r = f(table.unpack(args, 1, args.n))
    return r
  end)
  lu.assertFalse(ok, 'expected an error')
  return e
end

TestCheck = {}

function TestCheck:test_int_bounds_and_message()
  lu.assertEquals(check.int('w', 'k', 3, 1, 5), 3)
  lu.assertEquals(math.type(check.int('w', 'k', 3.0, 1)), 'integer')
  lu.assertEquals(check.int('w', 'k', 1, 1), 1) -- bounds are inclusive
  lu.assertEquals(check.int('w', 'k', 5, 1, 5), 5)
  lu.assertEquals(err_of(check.int, 'nn.X', 'k', 0, 1, 5),
                  'nn.X: k must be an integer in [1, 5], got 0')
  lu.assertEquals(err_of(check.int, 'nn.X', 'k', 6, 1, 5),
                  'nn.X: k must be an integer in [1, 5], got 6')
  lu.assertEquals(err_of(check.int, 'nn.X', 'k', 1.5, 1),
                  'nn.X: k must be an integer in [1, inf], got 1.5')
  lu.assertStrContains(err_of(check.int, 'nn.X', 'k', 0 / 0, 1), 'must be an integer')
  lu.assertStrContains(err_of(check.int, 'nn.X', 'k', '3', 1), 'got 3')
end

function TestCheck:test_number_open_and_closed_ends()
  lu.assertEquals(check.number('w', 'p', 0, 0, 1), 0)
  lu.assertEquals(check.number('w', 'p', 1, 0, 1), 1)
  lu.assertEquals(err_of(check.number, 'o', 'p', 1, 0, 1, false, true),
                  'o: p must be a number in [0, 1), got 1')
  lu.assertEquals(err_of(check.number, 'o', 'eps', 0, 0, math.huge, true),
                  'o: eps must be a number in (0, inf], got 0')
  lu.assertStrContains(err_of(check.number, 'o', 'p', 0 / 0, 0, 1), 'nan')
  lu.assertStrContains(err_of(check.number, 'o', 'p', -1e-9, 0, 1), 'in [0, 1]')
  lu.assertEquals(check.number('o', 'p', 0.5, 0, 1, true, true), 0.5)
end

function TestCheck:test_shapes_are_written_one_way()
  lu.assertEquals(check.shape(agop.zeros(2, 3)), '2x3')
  lu.assertEquals(check.shape(agop.zeros(4)), '4')
  lu.assertEquals(check.sizes({}), 'scalar')
  lu.assertEquals(check.shape({}), 'table')
  lu.assertEquals(check.sizes({3, 1, 3, 3}), '3x1x3x3')
  -- the same format as the engine's messages
  local ok, e = pcall(agop.mm, agop.zeros(2, 3), agop.zeros(2, 3))
  lu.assertFalse(ok)
  lu.assertStrContains(e, '2x3')
  lu.assertTrue(check.same_size(agop.zeros(2, 3), agop.ones(2, 3)))
  lu.assertFalse(check.same_size(agop.zeros(2, 3), agop.zeros(3, 2)))
  lu.assertFalse(check.same_size(agop.zeros(6), agop.zeros(2, 3)))
end

function TestCheck:test_maxnumel_is_the_engines()
  lu.assertEquals(check.MAXNUMEL, 1 << 40)
  lu.assertStrContains(err_of(agop.zeros, check.MAXNUMEL + 1),
                       string.format('in [0, %d], got %d', check.MAXNUMEL, check.MAXNUMEL + 1))
end

function TestCheck:test_tensor_and_generator()
  local t = agop.zeros(1)
  lu.assertIs(check.tensor('w', 'x', t), t)
  lu.assertEquals(err_of(check.tensor, 'nn.Y', 'input', 3), 'nn.Y: input must be a tensor, got number')
  local g = agop.Generator(1)
  lu.assertIs(check.generator('w', g), g)
  lu.assertNil(check.generator('w', false))
  lu.assertNil(check.generator('w', nil))
  lu.assertStrContains(err_of(check.generator, 'w', t), 'generator must be an agop.Generator')
end

function TestCheck:test_options_contract()
  local NONE, REQ = util.NONE, util.REQUIRED
  local o = util.options({b = 2}, {a = 1, b = 0, c = NONE, d = false}, 'f')
  lu.assertEquals(o, {a = 1, b = 2, d = false}) -- NONE: known, absent; false: kept
  lu.assertEquals(util.options(nil, {a = 1}, 'f'), {a = 1})
  lu.assertEquals(util.options({c = 'x'}, {c = NONE}, 'f').c, 'x')
  lu.assertEquals(err_of(util.options, {stirde = 1}, {stride = 1}, 'nn.Z'),
                  "nn.Z: unknown option 'stirde' (did you mean 'stride'?)")
  lu.assertEquals(err_of(util.options, {}, {lr = REQ}, 'optim.SGD'),
                  "optim.SGD: option 'lr' is required")
  lu.assertEquals(err_of(util.options, 3, {}, 'g'), 'g: options must be a table, got number')
end

function TestCheck:test_library_errors_carry_no_position()
  -- one policy: the module's name, never a file:line of the library or of the caller
  local nn, optim, models = require('agop.nn'), require('agop.optim'), require('agop.models')
  -- (the engine's bindings follow it too: "conv2d: ..."; features.lua is not covered yet)
  for _, e in ipairs({
    err_of(nn.Conv2d, 1, 2, 3, {stride = 0}),
    err_of(nn.Linear, 1, 2, {baias = true}),
    err_of(optim.SGD, {momentum = 0.9}),
    err_of(models.vgg11, {widht = 2}),
    err_of(models.vgg11, {hidden = 0}),
    err_of(require('agop.json').encode, 1, {pretyy = true}),
    err_of(require('agop.json').decode, 3),
    err_of(require('agop.data').load, 'mnist', 'train', {pad = -1}),
    err_of(require('agop.data').batches, {}, 2),
    err_of(require('agop.files').save_npy, '/tmp/x.npy', {1, 2}),
    err_of(require('agop.init').register, '1bad', print),
    err_of(require('agop.stats').corr_offdiag, agop.zeros(3), agop.zeros(3, 3)),
  }) do
    lu.assertNotStrContains(e, '.lua:')
    lu.assertStrMatches(e, '^[%w_.:]+: .*')
  end
end
