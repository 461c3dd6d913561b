-- features on plain matrices: NFM = WᵀW of the flattened weight, eig / matpow / corr /
-- cosine against known answers, their argument errors, and DMatrix (the double
-- accumulator). The AGOP against a brute-force Jacobian and feature maps: test_features.lua.
local lu = require('luaunit')
local agop = require('agop')
local nn = require('agop.nn')
local features = require('agop.features')

local function flat(t) return t:contiguous():reshape(t:numel()):totable() end

TestFeatureMatrices = {}

function TestFeatureMatrices:test_nfm_is_wtw_of_flattened_weight()
  local conv = nn.Conv2d(2, 3, 3, {generator = agop.Generator(1)})
  local n = features.nfm(conv)
  local w = flat(conv.weight)
  lu.assertEquals(n:size(), {18, 18})
  for i = 1, 18 do
    for j = 1, 18 do
      local s = 0
      for o = 0, 2 do s = s + w[o * 18 + i] * w[o * 18 + j] end
      lu.assertAlmostEquals(n:get(i, j), s, 1e-5)
    end
  end
  lu.assertTrue(features.nfm(conv.weight):equal(n))
  lu.assertTrue(agop.nfm(conv.weight:reshape(3, 18)):equal(n))
  lu.assertTrue(conv:nfm():equal(n)) -- the REPL's spelling
  lu.assertErrorMsgContains('nn.Conv2d or a weight tensor', features.nfm, 'x')
end

function TestFeatureMatrices:test_eig_of_diagonal_and_rotation_conjugated()
  local e, v = agop.tensor{{3, 0, 0}, {0, -1, 0}, {0, 0, 2}}:eig()
  lu.assertEquals(flat(e), {-1, 2, 3})
  lu.assertAlmostEquals(math.abs(v:get(2, 1)), 1, 1e-6)
  lu.assertAlmostEquals(math.abs(v:get(3, 2)), 1, 1e-6)
  lu.assertAlmostEquals(math.abs(v:get(1, 3)), 1, 1e-6)
  -- R diag(1, 4) R^T with R a rotation by 30 degrees
  local c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
  local r = agop.tensor{{c, -s}, {s, c}}
  local m = r:mm(agop.tensor{{1, 0}, {0, 4}}):mm(r:t())
  e, v = m:eig()
  lu.assertAlmostEquals(e:get(1), 1, 1e-5)
  lu.assertAlmostEquals(e:get(2), 4, 1e-5)
  lu.assertAlmostEquals(math.abs(v:get(1, 2) * (-s) + v:get(2, 2) * c), 1, 1e-5)
  -- square root: R diag(1, 2) R^T
  local want = r:mm(agop.tensor{{1, 0}, {0, 2}}):mm(r:t())
  lu.assertTrue(agop.allclose(m:matpow(0.5), want, 1e-5, 1e-5))
  lu.assertTrue(agop.allclose(features.pow(m, 0.5), want, 1e-5, 1e-5))
end

function TestFeatureMatrices:test_matpow_clips_negative_eigenvalues()
  -- H diag(-2, 0, 1, 9) H^T with H the 4x4 Hadamard / 2: exact in float
  local h = agop.tensor{{1, 1, 1, 1}, {1, -1, 1, -1}, {1, 1, -1, -1}, {1, -1, -1, 1}} / 2
  local m = h:mm(agop.tensor{{-2, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 9}})
            :mm(h:t())
  local want = h:mm(agop.tensor{{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 3}})
               :mm(h:t())
  lu.assertTrue(agop.allclose(m:matpow(0.5), want, 1e-6, 1e-6))
  local e = features.eig(m)
  lu.assertTrue(agop.allclose(e, agop.tensor{-2, 0, 1, 9}, 1e-6, 1e-6))
end

function TestFeatureMatrices:test_corr_and_cosine()
  local a = agop.randn(agop.Generator(2), 6, 6)
  lu.assertAlmostEquals(features.corr(a, a * 2 + 3), 1, 1e-12)
  lu.assertAlmostEquals(features.corr(a, -a + 1), -1, 1e-12)
  lu.assertAlmostEquals(features.corr(agop.tensor{1, 2, 3, 4}, agop.tensor{1, 3, 2, 4}), 0.8,
                        1e-12)
  lu.assertAlmostEquals(features.cosine(agop.tensor{1, 0}, agop.tensor{1, 1}),
                        1 / math.sqrt(2), 1e-12)
  lu.assertAlmostEquals(features.cosine(a, a * 3), 1, 1e-12)
  lu.assertErrorMsgContains('shapes differ', features.corr, a, agop.zeros(3))
  lu.assertErrorMsgContains('constant', features.corr, a, agop.ones(6, 6))
  lu.assertErrorMsgContains('zero', features.cosine, a, agop.zeros(6, 6))
end

function TestFeatureMatrices:test_eig_and_matpow_argument_errors()
  lu.assertErrorMsgContains('not symmetric', agop.eig, agop.tensor{{1, 2}, {3, 4}})
  lu.assertErrorMsgContains('square', agop.eig, agop.zeros(2, 3))
  lu.assertErrorMsgContains('non-finite', agop.matpow, agop.tensor{{0 / 0, 0}, {0, 1}}, 0.5)
  lu.assertErrorMsgContains('exponent', agop.matpow, agop.ones(2, 2), -1)
  lu.assertErrorMsgContains('exponent', agop.matpow, agop.ones(2, 2), 0 / 0)
end

function TestFeatureMatrices:test_dmatrix_methods()
  local s = agop.dmatrix(2)
  agop.agop_accumulate(s, agop.tensor{{1, 2}, {3, 4}}) -- (B=2, C=2): rows are g
  lu.assertEquals(s:get(1, 1), 10)
  lu.assertEquals(s:get(1, 2), 14)
  lu.assertEquals(s:get(2, 2), 20)
  lu.assertEquals(flat(s:tensor()), {10, 14, 14, 20})
  local t = agop.dmatrix(2)
  agop.agop_accumulate(t, agop.tensor{{1, 0}})
  s:add(t)
  lu.assertEquals(s:get(1, 1), 11)
  lu.assertEquals(s:size(), 2)
  lu.assertStrContains(tostring(s), 'agop.DMatrix(2x2')
  s:zero()
  lu.assertEquals(s:get(2, 2), 0)
  -- add(T): a float tensor, exact in double; tensor(div): S / div rounded once
  s:add(agop.tensor{{1, 0.1}, {0.1, 3}})
  lu.assertEquals(s:get(1, 2), agop.tensor{0.1}:get(1))  -- the float nearest 0.1, exactly
  lu.assertEquals(flat(s:tensor(2)), flat(agop.tensor{{0.5, 0.05}, {0.05, 1.5}}))
  s:zero():add(agop.tensor{{1, 0}, {0, 3}})
  lu.assertEquals(flat(s:tensor(3)), {agop.tensor{1 / 3}:get(1), 0, 0, 1})
  lu.assertErrorMsgContains('DMatrix:add: tensor 3x3 does not match the 2x2 accumulator',
                            s.add, s, agop.zeros(3, 3))
  lu.assertErrorMsgContains('DMatrix:add: tensor (2x2) has a non-finite entry', s.add, s,
                            agop.full(1 / 0, 2, 2))
  lu.assertErrorMsgContains('agop.DMatrix', s.add, s, 'x')
  lu.assertErrorMsgContains('DMatrix:tensor: divisor must be > 0', s.tensor, s, 0)
  lu.assertErrorMsgContains('DMatrix:tensor: divisor', s.tensor, s, 0 / 0)
end
