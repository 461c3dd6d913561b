-- agop.ansatz: the running-sum AGOP equals features.agop at every n, the block bootstrap
-- equals a brute-force bootstrap that resamples the images themselves, the null N^½ is
-- the matrix square root, and tracking during training leaves the weights unchanged.
local lu = require('luaunit')
local agop = require('agop')
local models = require('agop.models')
local data = require('agop.data')
local features = require('agop.features')
local ansatz = require('agop.ansatz')
local stats = require('agop.stats')
local helpers = require('helpers')

local function tiny(seed)
  return models.vgg11{width = 1 / 32, generator = agop.Generator(seed or 3)} -- 2..16 channels
end

local function rel(a, b)
  local s = b:abs():max()
  return (a - b):abs():max() / (s > 0 and s or 1)
end

TestAnsatz = {}

function TestAnsatz:test_one_pass_gives_the_agop_of_every_prefix()
  local m = tiny()
  local imgs = data.load('mnist', 'train', {limit = 40}).images
  local sw = ansatz.sweep(m, imgs, {ns = {3, 17, 40, 99}, boot_n = 20, blocks = 4, batch = 7})
  lu.assertEquals(sw.n, 40)
  lu.assertNil(sw.at[99]) -- beyond the images given
  for _, n in ipairs{3, 17, 40} do
    local _, _, S = features.agop(m, imgs:narrow(1, 1, n), {batch = 50})
    for l = 1, 8 do
      local e = rel(sw.at[n][l], S[l])
      if e > 1e-5 then lu.fail(string.format('n = %d, layer %d: relative difference %g', n, l, e)) end
    end
  end
  -- four blocks of five images: their sums are n_b S_b of those images
  lu.assertEquals(#sw.blocks, 4)
  local _, _, S3 = features.agop(m, imgs:narrow(1, 11, 5), {batch = 50})
  lu.assertEquals(sw.blocks[3].n, 5)
  for l = 1, 8 do lu.assertTrue(rel(sw.blocks[3].sums[l], S3[l] * 5) < 1e-5, 'block 3 layer ' .. l) end
end

-- The brute force: for each replicate, the images themselves repeated by their counts.
local function brute(m, imgs, nblocks, replicates, seed, nfm)
  local n = imgs:size(1)
  local gen, vals = agop.Generator(seed), {}
  for r = 1, replicates do
    local c = stats.resample(gen, nblocks)
    local idx = {}
    for b = 1, nblocks do
      for _ = 1, c[b] do
        for i = (b - 1) * n // nblocks + 1, b * n // nblocks do idx[#idx + 1] = i end
      end
    end
    local _, H = features.agop(m, imgs:index_select(1, idx), {batch = 50, power = 0.5})
    vals[r] = {}
    for l = 1, 8 do vals[r][l] = features.corr(nfm[l], H[l]) end
  end
  return vals
end

function TestAnsatz:test_bootstrap_matches_brute_force_resampling_of_images()
  local m = tiny(5)
  local imgs = data.load('mnist', 'train', {limit = 12}).images
  local nfm = {}
  for l, conv in ipairs(m.convs) do nfm[l] = features.nfm(conv) end
  for _, nblocks in ipairs{12, 4} do -- one image a block (the image bootstrap), and blocks of 3
    local sw = ansatz.sweep(m, imgs, {boot_n = 12, blocks = nblocks})
    local R = 25
    local ci = ansatz.bootstrap(m, sw.blocks, {replicates = R, seed = 9, method = 'percentile'})
    local bf = brute(m, imgs, nblocks, R, 9, nfm)
    for l = 1, 8 do
      local col = {}
      for r = 1, R do
        col[r] = bf[r][l]
        lu.assertAlmostEquals(ci[l].values[r], bf[r][l], 1e-4,
          string.format('%d blocks, layer %d, replicate %d', nblocks, l, r))
      end
      lu.assertAlmostEquals(ci[l].low, stats.percentile(col, 0.025), 1e-4)
      lu.assertAlmostEquals(ci[l].high, stats.percentile(col, 0.975), 1e-4)
      lu.assertTrue(ci[l].low <= ci[l].high)
      lu.assertTrue(ci[l].low_off <= ci[l].high_off)
    end
  end
end

function TestAnsatz:test_bca_uses_the_full_and_the_leave_one_block_out_agops()
  -- BCa's estimate is ρ on all the images, and its acceleration comes from the jackknife
  -- over blocks: both recomputed here by features.agop on the images themselves
  local m = tiny(6)
  local imgs = data.load('mnist', 'train', {limit = 12}).images
  local nb = 4
  local sw = ansatz.sweep(m, imgs, {boot_n = 12, blocks = nb})
  local ci = ansatz.bootstrap(m, sw.blocks, {replicates = 30, seed = 2})
  local function rho(idx)
    local _, H = features.agop(m, imgs:index_select(1, idx), {batch = 50, power = 0.5})
    local out = {}
    for l = 1, 8 do out[l] = features.corr(features.nfm(m.convs[l]), H[l]) end
    return out
  end
  local all = {}
  for i = 1, 12 do all[i] = i end
  local full = rho(all)
  local jk = {}
  for b = 1, nb do
    local idx = {}
    for i = 1, 12 do if (i - 1) // 3 + 1 ~= b then idx[#idx + 1] = i end end
    jk[b] = rho(idx)
  end
  for l = 1, 8 do
    lu.assertAlmostEquals(ci[l].estimate, full[l], 1e-4, 'layer ' .. l)
    local mean, s2, s3 = 0, 0, 0
    for b = 1, nb do mean = mean + jk[b][l] / nb end
    for b = 1, nb do
      local u = mean - jk[b][l]
      s2, s3 = s2 + u * u, s3 + u * u * u
    end
    local a = s2 > 0 and s3 / (6 * s2 ^ 1.5) or 0
    lu.assertAlmostEquals(ci[l].accel, a, 0.02, 'layer ' .. l)
    lu.assertTrue(ci[l].low <= ci[l].high)
  end
end

function TestAnsatz:test_nfm_half_is_the_matrix_square_root()
  local m = tiny(2)
  for _, l in ipairs{1, 4} do -- d = 9 > c_out = 2 (rank-deficient N), and d = 72 > 8
    -- the PSD square root is unique: H symmetric, H >= 0 and H H = N. (matpow in float
    -- is no reference here: N is rank-deficient and its noise eigenvalues get square-rooted)
    local N = features.nfm(m.convs[l])
    local H = ansatz.nfm_half(m.convs[l])
    local e = rel(H:mm(H), N)
    if e > 1e-5 then lu.fail(string.format('layer %d: |H H - N| relative %g', l, e)) end
    lu.assertTrue(rel(H:t():contiguous(), H) < 1e-6)
    lu.assertTrue(H:eig():min() > -1e-5 * H:abs():max())
    lu.assertTrue(rel(H, N:matpow(0.5)) < 1e-2) -- and near the float eigensolver's
  end
  -- the null through the c_out-space path equals ρ(N, N^½) from the d x d matrices
  for l = 1, 8 do
    local N = features.nfm(m.convs[l])
    local H = ansatz.nfm_half(m.convs[l])
    local rho, off = ansatz.null(m.convs[l])
    lu.assertAlmostEquals(rho, features.corr(N, H), 1e-5)
    lu.assertAlmostEquals(off, stats.corr_offdiag(N, H), 1e-5)
  end
end

function TestAnsatz:test_compare_in_c_out_space_equals_the_d_by_d_matrices()
  local m = models.vgg11{width = 0.25, generator = agop.Generator(6)}
  local imgs = data.load('mnist', 'train', {limit = 20}).images
  local _, H, S = features.agop(m, imgs, {batch = 20, power = 0.5})
  for l, conv in ipairs(m.convs) do -- d < c_out in layer 1, d > c_out in the others
    local N = features.nfm(conv)
    local c = ansatz.compare(conv, S[l])
    lu.assertAlmostEquals(c.rho, features.corr(N, H[l]), 1e-5, 'layer ' .. l)
    lu.assertAlmostEquals(c.rho_off, stats.corr_offdiag(N, H[l]), 1e-5, 'layer ' .. l)
  end
  helpers.errors_with('ansatz_corr: S is 3x3, expected 16x16', agop.ansatz_corr, agop.zeros(3, 3),
    m.convs[1].weight)
  helpers.errors_with('ansatz_corr: W^T S W is zero', agop.ansatz_corr, agop.zeros(16, 16),
    m.convs[1].weight)
  helpers.errors_with('is not symmetric', agop.ansatz_corr, agop.randn(agop.Generator(1), 16, 16),
    m.convs[1].weight)
end

function TestAnsatz:test_track_steps_are_evenly_spaced_with_both_ends()
  lu.assertEquals(ansatz.track_steps(100, 5), {0, 25, 50, 75, 100})
  lu.assertEquals(ansatz.track_steps(10, 4), {0, 3, 7, 10})
  lu.assertEquals(ansatz.track_steps(2, 5), {0, 1, 2})
end

function TestAnsatz:test_tracking_during_training_leaves_the_weights_unchanged()
  local train = require('agop.train')
  local tr = data.load('mnist', 'train', {limit = 96})
  local cfg = {epochs = 2, batch = 16, lr = 0.02, quiet = true, seed = 4}
  agop.manual_seed(4)
  local a = tiny(4)
  train.fit(a, tr, nil, cfg)
  agop.manual_seed(4)
  local b, b0 = tiny(4), tiny(4)
  local d = os.tmpname()
  local tk = ansatz.tracker(b, b0, tr.images:narrow(1, 1, 10), {path = d})
  local want = {}
  for _, s in ipairs(ansatz.track_steps(12, 4)) do want[s] = true end
  tk:record(0, 0 / 0)
  cfg.on_step = function(step, loss) if want[step] then tk:record(step, loss) end end
  train.fit(b, tr, nil, cfg)
  lu.assertTrue(a:flatten_parameters():equal(b:flatten_parameters()), 'tracking changed training')
  lu.assertEquals(#tk.rows, 4 * 8)
  -- step 0: the network is its initial one
  for _, r in ipairs(tk.rows) do
    if r.step == 0 then
      lu.assertAlmostEquals(r.corr_init_nfm, 1, 1e-6)
      lu.assertEquals(r.weight_change, 0)
    end
  end
  -- a resumed tracker reads the rows back and replaces a step recorded again
  local again = ansatz.tracker(b, b0, tr.images:narrow(1, 1, 10), {path = d})
  lu.assertEquals(#again.rows, 32)
  again:record(12, 0.5)
  lu.assertEquals(#again.rows, 32)
  os.remove(d)
end
