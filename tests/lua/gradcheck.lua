-- gradcheck: finite-difference gradient checks for nn modules, computed in double in Lua.
--
--   local gc = require('gradcheck')
--   local r = gc.check_module(nn.Conv2d(2, 3, 3), x, {gen = g})
--   -- r.input, r.params[i]: {err = relative max error, at = index, worst = {a, n}}
--
-- The loss is L = sum(output * r) for a fixed random r, so dL/doutput = r: backward(x, r)
-- gives the analytic gradients; each input / parameter entry is then moved by +-h (in
-- float32, the actual step is read back) and (L+ - L-) / (x+ - x-) is the numeric one.
-- The error reported is max |analytic - numeric| / max(max |numeric|, 1e-3) over all
-- entries, after subtracting the finite difference's own rounding noise: L is summed from
-- a float32 forward, so (L+ - L-) / 2h carries about eps32 * sum |y r| / h of noise, the
-- whole numeric gradient of an entry whose true gradient is 0 (a bias before batchnorm),
-- and a size that depends on the BLAS kernels in use (OPENBLAS_CORETYPE).
local agop = require('agop')

local gc = {}

-- The values of t as a flat Lua list (doubles).
function gc.list(t)
  return t:contiguous():view(-1):totable()
end

function gc.dot(a, b)
  local s = 0
  for i = 1, #a do s = s + a[i] * b[i] end
  return s
end

-- Central differences of loss() w.r.t. every entry of the contiguous tensor t.
function gc.numeric(t, loss, h)
  assert(t:is_contiguous(), 'gradcheck.numeric: tensor must be contiguous')
  local v = t:view(-1)
  local out = {}
  for i = 1, v:numel() do
    local x0 = v:get(i)
    v:set(i, x0 + h)
    local xp = v:get(i)
    local lp = loss()
    v:set(i, x0 - h)
    local xm = v:get(i)
    local lm = loss()
    v:set(i, x0)
    out[i] = (lp - lm) / (xp - xm)
  end
  return out
end

-- {err = max |a - n| / max |n|, at = index of the worst entry, a = ..., n = ...}
function gc.compare(a, n, noise)
  assert(#a == #n, string.format('gradcheck.compare: %d analytic vs %d numeric', #a, #n))
  local scale, worst, at = 0, 0, 0
  for i = 1, #n do scale = math.max(scale, math.abs(n[i])) end
  for i = 1, #n do
    local d = math.max(0, math.abs(a[i] - n[i]) - (noise or 0))
    if d > worst then worst, at = d, i end
  end
  -- an entry whose true gradient is 0 (a bias followed by batchnorm) has only rounding
  -- noise: errors are measured against at least 1e-3
  scale = math.max(scale, 1e-3)
  return {err = worst / scale, at = at, a = a[at], n = n[at], scale = scale}
end

function gc.describe(r)
  return string.format('relative error %.3g at entry %d (analytic %.6g, numeric %.6g, scale %.3g)',
                       r.err, r.at, r.a or 0, r.n or 0, r.scale or 0)
end

-- Checks module m at input x: returns {input = result, params = {result...}, output = y}.
-- opt: gen (generator for r), h (step, default 1e-2), input (false: skip the input).
function gc.check_module(m, x, opt)
  opt = opt or {}
  local h = opt.h or 1e-2
  local y = m:forward(x)
  local r = agop.randn(opt.gen or agop.Generator(7), y:size())
  local rl = gc.list(r)
  local yl, mag = gc.list(y), 0
  for i = 1, #yl do mag = mag + math.abs(yl[i] * rl[i]) end
  local noise = 2 ^ -23 * mag / h -- the rounding noise of one numeric entry (see above)
  m:zeroGrad()
  local gx = m:backward(x, r)
  local analytic_x = gx and gc.list(gx)
  local _, grads = m:parameters()
  local analytic_p = {}
  for i, g in ipairs(grads) do analytic_p[i] = gc.list(g) end
  local function loss() return gc.dot(gc.list(m:forward(x)), rl) end
  local out = {params = {}, output = y}
  if opt.input ~= false then
    out.input = gc.compare(analytic_x, gc.numeric(x, loss, h), noise)
  end
  local params = m:parameters()
  for i, p in ipairs(params) do
    out.params[i] = gc.compare(analytic_p[i], gc.numeric(p, loss, h), noise)
  end
  return out
end

-- Asserts every error of a check_module result is below tol.
function gc.assert_ok(lu, r, tol, what)
  if r.input then
    lu.assertTrue(r.input.err < tol, what .. ': input gradient: ' .. gc.describe(r.input))
  end
  for i, p in ipairs(r.params) do
    lu.assertTrue(p.err < tol, what .. ': parameter ' .. i .. ' gradient: ' .. gc.describe(p))
  end
end

return gc
