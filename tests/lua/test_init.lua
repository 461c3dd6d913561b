-- Initialization rules: each draws filters with the covariance it promises; the
-- registry's errors.
local lu = require('luaunit')
local agop = require('agop')
local nn = require('agop.nn')
local init = require('agop.init')

local COUT = 6000 -- filters drawn per check: covariance error ~ 1/sqrt(COUT)

-- A stand-in model: one conv layer with many filters of d = 2*2*2 = 8 entries.
local function model_with(cout, cin, k)
  return {convs = {nn.Conv2d(cin or 2, cout or COUT, k or 2)}, classifier = {modules = {}}}
end

local function empirical_cov(w)
  local rows = w:contiguous():view(w:size(1), -1)
  return rows:t():mm(rows) / w:size(1)
end

local function rel_err(a, b) return (a - b):norm() / b:norm() end

local function trace(M)
  local s = 0
  for i = 1, M:size(1) do s = s + M:get(i, i) end
  return s
end

-- A symmetric source matrix with eigenvalues `lam` in a random basis, in double-free
-- float: V diag(lam) V^T.
local function source_with_eigs(lam, seed)
  local d = #lam
  local a = agop.randn(agop.Generator(seed), d, d)
  local _, v = a:mm(a:t()):eig()
  local D = agop.zeros(d, d)
  for i = 1, d do D:set(i, i, lam[i]) end
  return v:mm(D):mm(v:t())
end

local function expected(M, f, scale)
  local vals, vecs = M:eig()
  local lam = f(vals:totable())
  local D = agop.zeros(#lam, #lam)
  for i = 1, #lam do D:set(i, i, lam[i] * scale) end
  return vecs:mm(D):mm(vecs:t())
end

TestInit = {}

function TestInit:test_kaiming_normal_variance()
  local m = model_with(COUT, 2, 2)
  init.apply(m, 'kaiming_normal', {generator = agop.Generator(1)})
  local C = empirical_cov(m.convs[1].weight)
  local want = agop.zeros(8, 8)
  for i = 1, 8 do want:set(i, i, 2 / 8) end -- N(0, 2 / fan_in), fan_in = 8
  lu.assertTrue(rel_err(C, want) < 0.06, 'relative error ' .. rel_err(C, want))
end

function TestInit:test_uniform_baselines_bounds_and_variance()
  local m = model_with(COUT, 2, 2)
  init.apply(m, 'kaiming_uniform', {generator = agop.Generator(2)})
  local w = m.convs[1].weight
  local b = math.sqrt(3) * math.sqrt(2) / math.sqrt(8)
  lu.assertTrue(w:max() <= b and w:min() >= -b)
  lu.assertAlmostEquals((w * w):mean(), 2 / 8, 0.01)
  init.apply(m, 'xavier_uniform', {generator = agop.Generator(3)})
  local a = math.sqrt(6 / (8 + COUT * 4))
  lu.assertTrue(w:max() <= a and w:min() >= -a)
  init.apply(m, 'torch_default', {generator = agop.Generator(4)})
  lu.assertTrue(w:max() <= 1 / math.sqrt(8) and w:min() >= -1 / math.sqrt(8))
  lu.assertTrue(m.convs[1].bias:abs():max() > 0) -- torch_default draws the bias too
end

function TestInit:test_orthogonal_rows()
  local m = model_with(4, 2, 2) -- 4 rows of 8 entries: orthonormal rows
  init.apply(m, 'orthogonal', {generator = agop.Generator(5)})
  local r = m.convs[1].weight:view(4, 8)
  lu.assertTrue(agop.allclose(r:mm(r:t()), agop.tensor{{1,0,0,0},{0,1,0,0},{0,0,1,0},{0,0,0,1}}, 1e-4, 1e-4))
end

function TestInit:test_seed_nfm_rule_covariance_is_shifted_N_over_trace()
  local N = source_with_eigs({-0.5, 0.1, 0.2, 0.5, 1, 2, 3, 4}, 7) -- λmin < 0: shifted
  local m = model_with(COUT, 2, 2)
  init.apply(m, 'nfm', {generator = agop.Generator(8), source = {nfm = {N}}})
  local want = expected(N, init.shift, 1 / trace(N))
  local C = empirical_cov(m.convs[1].weight)
  lu.assertTrue(rel_err(C, want) < 0.06, 'relative error ' .. rel_err(C, want))
  -- the shift: every eigenvalue moved up by |λmin| + 1e-6
  local vals = want:eig()
  lu.assertAlmostEquals(vals[1] * trace(N), 1e-6, 1e-4)
end

function TestInit:test_seed_kaiming_nfm_and_agop_rules()
  local G = source_with_eigs({0, 0.01, 0.04, 0.09, 0.25, 1, 4, 9}, 9) -- PSD: G^1/2 known
  local S = source_with_eigs({0, 0.1, 0.2, 0.3, 0.5, 1, 2, 3}, 9)       -- same basis (seed 9)
  local m = model_with(COUT, 2, 2)
  init.apply(m, 'kaiming_nfm', {generator = agop.Generator(10), source = {nfm = {S}}})
  local want = expected(S, init.shift, math.sqrt(2 / 8))
  local C = empirical_cov(m.convs[1].weight)
  lu.assertTrue(rel_err(C, want) < 0.06, 'kaiming_nfm relative error ' .. rel_err(C, want))

  init.apply(m, 'agop', {generator = agop.Generator(11), source = {agop = {G}}})
  local half = G:matpow(0.5)
  want = expected(half, init.shift, 1 / trace(half))
  C = empirical_cov(m.convs[1].weight)
  lu.assertTrue(rel_err(C, want) < 0.06, 'agop relative error ' .. rel_err(C, want))
  lu.assertAlmostEquals(trace(half), 0 + 0.1 + 0.2 + 0.3 + 0.5 + 1 + 2 + 3, 1e-3)

  init.apply(m, 'kaiming_agop', {generator = agop.Generator(12), source = {agop = {G}}})
  want = expected(half, init.shift, math.sqrt(2 / 8) / 100)
  C = empirical_cov(m.convs[1].weight)
  lu.assertTrue(rel_err(C, want) < 0.06, 'kaiming_agop relative error ' .. rel_err(C, want))
end

function TestInit:test_scaled_rules_match_kaiming_norm_with_clipped_eigenvalues()
  local N = source_with_eigs({-1, 0, 0.5, 1, 1, 2, 3, 8}, 13)
  local m = model_with(COUT, 2, 2)
  init.apply(m, 'nfm_scaled', {generator = agop.Generator(14), source = {nfm = {N}}})
  local clipped = expected(N, init.clip, 1)
  local want = clipped * (2 / trace(clipped)) -- E|w|^2 = 2 d / fan_in = 2
  local C = empirical_cov(m.convs[1].weight)
  lu.assertTrue(rel_err(C, want) < 0.06, 'relative error ' .. rel_err(C, want))
  lu.assertAlmostEquals(trace(C), 2, 0.1)
end

function TestInit:test_rule_with_a_source_model()
  local src = model_with(16, 2, 2)
  init.apply(src, 'kaiming_normal', {generator = agop.Generator(15)})
  local m = model_with(COUT, 2, 2)
  init.apply(m, 'nfm_scaled', {generator = agop.Generator(16), source_model = src})
  local N = require('agop.features').nfm(src.convs[1])
  local clipped = expected(N, init.clip, 1)
  local want = clipped * (2 / trace(clipped))
  lu.assertTrue(rel_err(empirical_cov(m.convs[1].weight), want) < 0.08)
end

function TestInit:test_user_rule_registers_and_applies()
  init.register('test_constant', function(w) return w:fill(0.25) end, 'all 0.25')
  local found = false
  for _, r in ipairs(init.list()) do found = found or r.name == 'test_constant' end
  lu.assertTrue(found)
  local m = model_with(3, 1, 3)
  init.apply(m, 'test_constant')
  lu.assertEquals(m.convs[1].weight:mean(), 0.25)
  lu.assertEquals(m.convs[1].bias:abs():sum(), 0)
  -- a rule returning a fresh tensor of the right shape
  init.apply(m, function(w) return agop.ones(w:size()) end)
  lu.assertEquals(m.convs[1].weight:mean(), 1)
end

function TestInit:test_registry_errors()
  local m = model_with(3, 1, 3)
  local ok, err = pcall(init.apply, m, 'kaiming_normall')
  lu.assertFalse(ok)
  lu.assertStrContains(err, "unknown rule 'kaiming_normall'")
  lu.assertStrContains(err, "did you mean 'kaiming_normal'")
  ok, err = pcall(init.apply, m, function() return agop.ones(2, 2) end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, 'returned a 2x2 tensor for layer 1, whose weight is 3x1x3x3')
  ok, err = pcall(init.apply, m, function(w) return w:fill(0 / 0) end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, 'non-finite values in layer 1')
  ok, err = pcall(init.apply, m, function() return 'x' end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, 'returned string')
  ok, err = pcall(init.apply, m, 'nfm', {})
  lu.assertFalse(ok)
  lu.assertStrContains(err, 'no nfm source matrix for layer 1')
  ok, err = pcall(init.register, 'bad name', function() end)
  lu.assertFalse(ok)
  ok, err = pcall(init.apply, m, 'nfm', {source = {nfm = {agop.eye and agop.eye(5) or agop.ones(5, 5)}}})
  lu.assertFalse(ok)
  lu.assertStrContains(err, 'does not fit filters of 9 entries')
end

function TestInit:test_controls_keep_norm_spectrum_or_subspace_of_the_matched_rule()
  local lam = {0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 6}
  local N = source_with_eigs(lam, 17)
  local src = {nfm = {N}}
  local sigma = expected(N, init.shift, 1 / trace(N)) -- the seed's nfm rule, tr = 1
  local m = model_with(COUT, 2, 2)
  -- iso_matched: tr(Σ)/d I, the nfm rule's expected filter norm and nothing else
  init.apply(m, 'iso_matched', {generator = agop.Generator(18), source = src, match = 'nfm'})
  local C = empirical_cov(m.convs[1].weight)
  local want = agop.zeros(8, 8)
  for i = 1, 8 do want:set(i, i, 1 / 8) end
  lu.assertTrue(rel_err(C, want) < 0.06, 'iso relative error ' .. rel_err(C, want))
  -- spectrum_matched: Σ's eigenvalues, but not Σ's eigenvectors
  init.apply(m, 'spectrum_matched', {generator = agop.Generator(19), source = src})
  C = empirical_cov(m.convs[1].weight)
  local got, ref = C:eig():totable(), sigma:eig():totable()
  for i = 1, 8 do lu.assertAlmostEquals(got[i], ref[i], 0.06 * ref[8], 'eigenvalue ' .. i) end
  lu.assertTrue(rel_err(C, sigma) > 0.3, 'spectrum_matched kept the eigenvectors')
  -- with nfm_scaled as the matched rule the trace is Kaiming's, 2
  init.apply(m, 'spectrum_matched', {generator = agop.Generator(20), source = src, match = 'nfm_scaled'})
  lu.assertAlmostEquals(trace(empirical_cov(m.convs[1].weight)), 2, 0.1)
  -- subspace_matched with 3 filters of 8 entries: every filter in Σ's top-3 eigenspace,
  -- E|w|^2 = tr(Σ) = 1, equal spread over the 3 directions
  local _, vecs = sigma:eig()
  local top = vecs:narrow(2, 6, 3)
  local P = top:mm(top:t())
  local small = model_with(3, 2, 2)
  local norm2, along = 0, {0, 0, 0}
  local draws = 1500
  for k = 1, draws do
    init.apply(small, 'subspace_matched', {generator = agop.Generator(100 + k), source = src})
    local r = small.convs[1].weight:contiguous():view(3, 8)
    local out = r - r:mm(P)
    lu.assertTrue(out:abs():max() < 1e-4 * r:abs():max(), 'a filter leaves the top subspace')
    norm2 = norm2 + (r * r):sum() / 3
    local c = r:mm(top)
    for j = 1, 3 do along[j] = along[j] + (c:narrow(2, j, 1) * c:narrow(2, j, 1)):sum() / 3 end
  end
  lu.assertAlmostEquals(norm2 / draws, 1, 0.05)
  for j = 1, 3 do lu.assertAlmostEquals(along[j] / draws, 1 / 3, 0.03) end
  -- a control needs a covariance rule to match
  local ok, err = pcall(init.apply, m, 'iso_matched', {source = src, match = 'orthogonal'})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "ctx.match must name a covariance rule")
end

-- nn's layers and models take their initial weights from the registry, bit for bit the
-- draws of the rules written out by hand (PyTorch's default; models' Kaiming)
function TestInit:test_layers_and_models_draw_from_the_registry()
  local models = require('agop.models')
  local conv = nn.Conv2d(2, 3, 3, {generator = agop.Generator(5)})
  local g = agop.Generator(5)
  local b = 1 / math.sqrt(2 * 3 * 3)
  local w = agop.zeros(3, 2, 3, 3):uniform_(-b, b, g)
  local bias = agop.zeros(3):uniform_(-b, b, g)
  lu.assertTrue(conv.weight:equal(w))
  lu.assertTrue(conv.bias:equal(bias))
  local lin = nn.Linear(4, 2, {generator = agop.Generator(6)})
  local via = nn.Linear(4, 2, {generator = agop.Generator(1)})
  init.module(via, 'torch_default', {generator = agop.Generator(6)})
  lu.assertTrue(lin.weight:equal(via.weight))
  lu.assertTrue(lin.bias:equal(via.bias))
  -- models.vgg11 init='kaiming': PyTorch's default first, then N(0, 2/fan_in), bias 0
  local m = models.vgg11{width = 1 / 16, generator = agop.Generator(8)}
  local g2 = agop.Generator(8)
  local c1 = m.convs[1]
  local b1 = 1 / math.sqrt(9)
  agop.zeros(4, 1, 3, 3):uniform_(-b1, b1, g2)
  agop.zeros(4):uniform_(-b1, b1, g2)
  lu.assertTrue(c1.weight:equal(agop.zeros(4, 1, 3, 3):normal_(0, math.sqrt(2 / 9), g2)))
  lu.assertEquals(c1.bias:abs():sum(), 0)
end
