-- The sketched patch-AGOP, features.agop(model, x, {probes = k}): k Gaussian seeds
-- v ~ N(0, I_C) per image instead of the C one-hot seeds. E[J^T v v^T J] = J^T J, so the
-- mean of many sketches is the exact AGOP; a sketch scaled wrongly (a missing 1/k, v with
-- variance 2, one v shared by the classes of a one-hot...) is off by a constant factor.
local lu = require('luaunit')
local agop = require('agop')
local nn = require('agop.nn')
local features = require('agop.features')

local function small_net()
  local g = agop.Generator(11)
  return nn.Sequential()
    :add(nn.Conv2d(1, 4, 3, {padding = 1, generator = g})):add(nn.ReLU())
    :add(nn.MaxPool2d(2))
    :add(nn.Conv2d(4, 6, 3, {padding = 1, generator = g})):add(nn.ReLU())
    :add(nn.Flatten()):add(nn.Linear(6 * 4 * 4, 5, {generator = g}))
end

local function frob(t) return math.sqrt((t * t):sum()) end
local function rel_err(a, exact) return frob(a - exact) / frob(exact) end

TestAgopSketch = {}

-- The mean over 4000 independent probes (one call with k = 4000 is the mean of 4000
-- k = 1 sketches) is within 5 % of the exact AGOP in Frobenius norm; a k = 1 sketch is
-- not (so the test can tell), and a sketch off by a factor 2 or 1/2 would be 50 % off.
-- Expected error of the mean: about err(k = 1) / sqrt(4000), i.e. ~1-2 % here.
function TestAgopSketch:test_mean_of_many_probes_is_the_exact_agop()
  local m = small_net()
  local x = agop.randn(agop.Generator(3), 6, 1, 8, 8)
  local G = features.agop(m, x)
  local G1 = features.agop(m, x, {probes = 1, seed = 5})
  local Gk, _, Sk, info = features.agop(m, x, {probes = 4000, seed = 7})
  lu.assertEquals(info, {images = 6, seeds = 'gaussian', probes = 4000, seed = 7})
  for l = 1, 2 do
    local e1, ek = rel_err(G1[l], G[l]), rel_err(Gk[l], G[l])
    lu.assertTrue(ek < 0.05, string.format('layer %d: k = 4000 relative error %.4f', l, ek))
    lu.assertTrue(e1 > 4 * ek, string.format('layer %d: k = 1 error %.4f vs %.4f', l, e1, ek))
    -- the trace (sum of squared gradient norms) carries the scale: within 3 %
    local tr, trk = 0, 0
    for i = 1, G[l]:size(1) do tr, trk = tr + G[l]:get(i, i), trk + Gk[l]:get(i, i) end
    lu.assertTrue(math.abs(trk / tr - 1) < 0.03, string.format('layer %d: trace ratio %.4f', l,
                                                               trk / tr))
    lu.assertEquals(Sk[l]:size(), {l == 1 and 4 or 6, l == 1 and 4 or 6})
  end
end

function TestAgopSketch:test_probes_are_reproducible_from_the_seed()
  local m = small_net()
  local x = agop.randn(agop.Generator(4), 3, 1, 8, 8)
  local a = features.agop(m, x, {probes = 2, seed = 9})
  local b = features.agop(m, x, {probes = 2, generator = agop.Generator(9)})
  local c = features.agop(m, x, {probes = 2, seed = 10})
  lu.assertTrue(a[2]:equal(b[2]))
  lu.assertFalse(a[2]:equal(c[2]))
  local _, _, _, info = features.agop(m, x)
  lu.assertEquals(info, {images = 3, seeds = 'classes'})
end

function TestAgopSketch:test_bad_probe_options_are_errors()
  local m = small_net()
  local x = agop.randn(agop.Generator(5), 2, 1, 8, 8)
  lu.assertErrorMsgContains('probes must be a positive integer', features.agop, m, x,
                            {probes = 0})
  lu.assertErrorMsgContains('probes must be a positive integer', features.agop, m, x,
                            {probes = 1.5})
  lu.assertErrorMsgContains('probes and classes exclude each other', features.agop, m, x,
                            {probes = 2, classes = 3})
end
