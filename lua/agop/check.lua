-- agop.check: argument checks shared by the Lua library, with one error policy.
--
--   local check = require('agop.check')
--   local k = check.int('nn.Conv2d', 'kernel size', k, 1, 1024)
--   local p = check.number('nn.Dropout', 'p', p, 0, 1, false, true)   -- [0, 1)
--   check.tensor('nn.Linear', 'input', x)
--   check.fail('nn.Linear', 'input has %d features, expected %d', n, m)
--   check.shape(t)    -- '2x3' ('scalar' for a 0-D tensor): the format of every message
--
-- The policy (as Lua's luaL_check* and the bindings): a message starts with the name of
-- the function or module that checked ("nn.Conv2d: ..."), says what was expected and what
-- came, and is raised at level 0, without a file:line position: the name says where.
-- A container adds only its own name in front (Sequential: "Sequential[3] (nn.Conv2d): "),
-- and so does a module in front of its binding's errors (nn/helpers.lua's named:
-- "nn.Conv2d: conv2d_shape: input has 2 channels, weight expects 3 (...)").
-- Options tables are checked by util.options, under the same policy.
local agop = require('agop')

local check = {}
local fmt, floor = string.format, math.floor

--- The largest number of elements a tensor may have: the engine's AG_MAXNUMEL (2^40), for
--- Lua code that bounds sizes before it asks the engine for a tensor.
check.MAXNUMEL = 1 << 40

--- Raises "who: <msg formatted with ...>" at level 0.
function check.fail(who, msg, ...)
  error(who .. ': ' .. fmt(msg, ...), 0)
end

--- A list of sizes as '2x3x4' ('scalar' for an empty list).
function check.sizes(s)
  if #s == 0 then return 'scalar' end
  return table.concat(s, 'x')
end

--- The shape of a tensor as '2x3' (the engine's ag_shape_str format), or the Lua type of
--- anything else.
function check.shape(t)
  if not agop.is_tensor(t) then return type(t) end
  return check.sizes(t:size())
end

--- True when two tensors have the same sizes.
function check.same_size(a, b)
  local sa, sb = a:size(), b:size()
  if #sa ~= #sb then return false end
  for i = 1, #sa do if sa[i] ~= sb[i] then return false end end
  return true
end

--- t, or an error "who: what must be a tensor, got <type>".
function check.tensor(who, what, t)
  if not agop.is_tensor(t) then check.fail(who, '%s must be a tensor, got %s', what, type(t)) end
  return t
end

--- v as an integer in [lo, hi] (hi nil: no upper bound), or an error
--- "who: what must be an integer in [lo, hi], got v".
function check.int(who, what, v, lo, hi)
  if type(v) ~= 'number' or v ~= v or v ~= floor(v) or v < lo or (hi and v > hi) then
    check.fail(who, '%s must be an integer in [%d, %s], got %s', what, lo,
               hi and tostring(hi) or 'inf', tostring(v))
  end
  return floor(v)
end

--- v, a number in [lo, hi] (open at lo with open_lo, at hi with open_hi), or an error
--- "who: what must be a number in (lo, hi], got v".
function check.number(who, what, v, lo, hi, open_lo, open_hi)
  if type(v) ~= 'number' or v ~= v or v < lo or v > hi or (open_lo and v == lo)
     or (open_hi and v == hi) then
    check.fail(who, '%s must be a number in %s%g, %g%s, got %s', what, open_lo and '(' or '[',
               lo, hi, open_hi and ')' or ']', tostring(v))
  end
  return v
end

--- g when it is an agop.Generator; nil for nil or false (the default generator).
function check.generator(who, g)
  if g == false or g == nil then return nil end
  if type(g) ~= 'userdata' or agop.is_tensor(g) then
    check.fail(who, 'generator must be an agop.Generator, got %s', type(g))
  end
  return g
end

return check
