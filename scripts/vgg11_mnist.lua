-- The main study: train VGG11 on MNIST, compute every conv layer's CNFM (W^T W) and
-- patch-AGOP, report how they correlate (Table 1), and draw them.
--
--   agoplua scripts/vgg11_mnist.lua [--epochs 1 --width 1 --agop-samples 1000 --out DIR]
--   agoplua scripts/vgg11_mnist.lua --quick      (narrow net, few images: under 2 minutes)
--   agoplua scripts/vgg11_mnist.lua --expand [--out DIR]   (no training: writes the .npy
--       matrices a committed run lacks from its models and AGOP factors; `make matrices`)
local agop = require('agop')
local cli = require('agop.cli')
local models = require('agop.models')
local data = require('agop.data')
local train = require('agop.train')
local features = require('agop.features')
local report = require('agop.report')
local ansatz = require('agop.ansatz')
local stats = require('agop.stats')
local util = require('agop.util')
local json = require('agop.json')
local dist = require('agop.dist') -- under mpirun: data-parallel, rank 0 alone writes
local root = dist.is_root()

local opt, given = cli.parse(arg, {
  {'epochs', 1, 'training epochs'},
  {'batch', 64, 'mini-batch size'},
  {'optimizer', 'sgd', 'update rule (sgd: with momentum)', {'sgd', 'adam'}},
  {'lr', 0.02, 'peak learning rate (cosine schedule after the warm-up)'},
  {'momentum', 0.9, 'SGD momentum'},
  {'weight_decay', 5e-4, 'L2 weight decay'},
  {'warmup', 100, 'linear warm-up steps'},
  {'width', 1.0, 'channel width multiplier (1 = VGG11 as published)'},
  {'init', 'kaiming', "conv init: kaiming N(0, 2/fan_in), or PyTorch's default",
    {'kaiming', 'pytorch'}},
  {'seed', 1, 'seed of initialization, shuffling and dropout'},
  {'train_limit', 0, 'train on the first N training images (0 = all 60000)'},
  {'test_limit', 0, 'test on the first N test images (0 = all 10000)'},
  {'agop_samples', 1000, 'AGOP over the first N training images'},
  {'agop_batch', 50, 'images per AGOP forward pass'},
  {'boot_replicates', 200, 'bootstrap replicates of the 95% CI of ρ(CNFM, AGOP^½) over '
    .. 'the AGOP images (0: no CI)'},
  {'boot_blocks', 50, 'the AGOP images are resampled in this many equal blocks (memory: '
    .. 'blocks x the layers\' c_out^2 floats)'},
  {'rho_n', '11,100,1000', 'ρ(CNFM, AGOP^½) over the first n training images for each n, '
    .. 'from one running sum (rho_vs_n.csv, rho_vs_n.png; empty: none). The committed run adds '
    .. '10000,60000 (the whole training set: about 60x the AGOP time)'},
  {'seeds', '', 'training seeds, e.g. 1,2,3: one run each in OUT/seed<k>/, then '
    .. 'table1_seeds.md/.csv with mean ± std over them (empty: --seed only)'},
  {'track', 0, 'K >= 2: measure the ansatz at K evenly spaced training steps, step 0 and '
    .. 'the end included (dynamics.csv, dynamics_conv<l>.png)'},
  {'track_images', 1000, 'AGOP images at each tracked step (the first N training images)'},
  {'vis_size', 128, 'input size for the feature-map figure (the digit is upscaled)'},
  {'threads', 0, 'threads (0 = AGOP_THREADS or all cores)'},
  {'out', '', 'output folder (default results/vgg11_mnist, or results/vgg11_mnist_quick)'},
  {'resume', false, 'continue an interrupted run from its checkpoint'},
  {'quick', false, 'width 0.25, 4000 training images, 300 AGOP samples: a test-sized run'},
  {'expand', false, 'no training: write the missing .npy matrices of the run in --out '
    .. 'from its model files and AGOP factors conv<l>_agop_s.npy, checked against run.json'},
  {'force', false, 'with --expand: rewrite the matrices that are already there too'},
}, {usage = 'agoplua scripts/vgg11_mnist.lua [options]',
    about = 'Trains VGG11 on MNIST and writes Table 1 (CNFM vs patch-AGOP) with figures.'})

if opt.quick then
  local quick = {width = 0.25, train_limit = 4000, test_limit = 2000, agop_samples = 300,
    epochs = 2, lr = 0.02, batch = 32, warmup = 20, vis_size = 64, rho_n = '11,100,300',
    boot_replicates = 20, boot_blocks = 20, track_images = 100}
  for k, v in pairs(quick) do if not given[k] then opt[k] = v end end
end
if opt.out == '' then opt.out = opt.quick and 'results/vgg11_mnist_quick' or 'results/vgg11_mnist' end
if opt.threads > 0 then agop.set_threads(opt.threads) end
if opt.expand then -- rebuild the big matrices of an existing run, and stop
  if root then report.expand_matrices(opt.out, {force = opt.force}) end
  return
end

local function numbers(list, what)
  local out = {}
  for _, w in ipairs(util.split(list)) do
    local v = math.tointeger(tonumber(w))
    if not v or v < 1 then
      io.stderr:write(string.format('%s: --%s expects positive integers, got %q\n', arg[0], what, w))
      os.exit(2)
    end
    out[#out + 1] = v
  end
  return out
end
local rho_ns, seeds = numbers(opt.rho_n, 'rho-n'), numbers(opt.seeds, 'seeds')
if opt.track == 1 or opt.track < 0 then
  io.stderr:write(arg[0] .. ': --track expects 0 (off) or K >= 2 points\n')
  os.exit(2)
end

-- One training run (seed `seed`) into the folder `out`: every file the README lists, plus
-- the rigorous Table 1 (nulls, off-diagonal ρ, bootstrap CIs), ρ against n, dynamics.
local function study(out, seed)
  local cfg = util.copy(opt)
  cfg.out, cfg.seed = out, seed
  local run = report.run(out, 'scripts/vgg11_mnist.lua', cfg)
  run:set('ranks', dist.size())

  -- 1. the network, and its initial weights
  agop.manual_seed(seed)
  local model = models.vgg11{in_channels = 1, num_classes = 10, input_size = 32,
    width = opt.width, init = opt.init, generator = agop.Generator(seed)}
  if root then print(model) end
  if root and not (opt.resume and util.exists(out .. '/model_init.safetensors')) then
    models.save(model, out .. '/model_init.safetensors')
  end
  dist.barrier() -- every rank reads the initial weights rank 0 wrote
  local init_nfm, init_w, init_model = {}, {}, nil
  do -- the initial CNFMs come from the saved initial weights (so a resumed run agrees)
    init_model = models.load(out .. '/model_init.safetensors')
    for l, conv in ipairs(init_model.convs) do
      init_w[l] = conv.weight
      init_nfm[l] = features.nfm(conv)
      run:npy(string.format('conv%d_nfm_init.npy', l), init_nfm[l])
    end
  end

  -- 2. training (with --track: the ansatz measured at K steps along the way)
  local train_set = data.load('mnist', 'train', {limit = opt.train_limit > 0 and opt.train_limit or nil})
  local test_set = data.load('mnist', 'test', {limit = opt.test_limit > 0 and opt.test_limit or nil})
  if root then print(string.format('data: %d training, %d test images (padded to 32x32, normalized)',
    train_set.images:size(1), test_set.images:size(1))) end
  local on_step, tracker = false, nil
  if opt.track >= 2 then
    local n_track = math.min(opt.track_images, train_set.images:size(1))
    local total = opt.epochs * ((train_set.images:size(1) + opt.batch - 1) // opt.batch)
    local steps = ansatz.track_steps(total, opt.track)
    local wanted = {}
    for _, st in ipairs(steps) do wanted[st] = true end
    if root and not opt.resume then os.remove(out .. '/dynamics.csv') end
    dist.barrier()
    tracker = ansatz.tracker(model, init_model, train_set.images:narrow(1, 1, n_track),
      {batch = opt.agop_batch, path = out .. '/dynamics.csv'})
    local have0 = false
    for _, r in ipairs(tracker.rows) do have0 = have0 or r.step == 0 end
    if not have0 then tracker:record(0, 0 / 0) end
    on_step = function(step, loss) if wanted[step] then tracker:record(step, loss) end end
    run:set('track', {points = #steps, steps = steps, images = n_track,
      from = string.format('train[1:%d]', n_track)})
  end
  local result = run:time('train', function()
    return train.fit(model, train_set, test_set, {
      epochs = opt.epochs, batch = opt.batch, optimizer = opt.optimizer, lr = opt.lr,
      momentum = opt.momentum,
      weight_decay = opt.weight_decay, warmup = opt.warmup, seed = seed, out = out,
      resume = opt.resume, on_step = on_step})
  end)
  if root then models.save(model, out .. '/model.safetensors') end
  run:set('train', {epochs = opt.epochs, steps = result.steps, seconds = result.seconds,
    img_per_s = result.img_per_s, test_acc_by_epoch = result.test_acc,
    final_test_acc = result.final_test_acc})
  if root then print(string.format('test accuracy %.2f%% after %d epochs (%.0f img/s)',
    100 * result.final_test_acc, opt.epochs, result.img_per_s)) end
  if tracker and root then
    local secs = 0
    for _, r in ipairs(tracker.rows) do if r.layer == 1 then secs = secs + r.seconds end end
    run.info.track.seconds = secs -- inside the training time above
    ansatz.figure_dynamics(tracker.rows, out .. '/dynamics_conv%d.png',
      string.format('%s, width %g', opt.optimizer, opt.width))
  end

  -- 3. CNFM and patch-AGOP of every conv layer. One pass over the training images in order
  -- gives the AGOP over the first n images for every n of --rho-n (a running sum), and the
  -- blocks of the first --agop-samples images that the bootstrap resamples.
  local n_agop = math.min(opt.agop_samples, train_set.images:size(1))
  local agop_images = train_set.images:narrow(1, 1, n_agop)
  local ns = util.copy(rho_ns)
  ns[#ns + 1] = n_agop
  local sweep = run:time('agop', function()
    return ansatz.sweep(model, train_set.images, {ns = ns, boot_n = n_agop,
      blocks = opt.boot_replicates > 0 and opt.boot_blocks or 0, batch = opt.agop_batch,
      progress = true})
  end)
  local S = sweep.at[n_agop]
  run:set('agop', {samples = n_agop, from = string.format('train[1:%d]', n_agop),
    classes = 10, logits = 'before softmax', mode = 'evaluation', batch = opt.agop_batch})
  -- the control: the same matrices of the untrained network. CNFM and AGOP are both
  -- quadratic forms in W (N = W^T W, G = W^T S W / n), so they correlate wherever S is
  -- near a multiple of the identity, learned features or not; the trained values mean
  -- something only beside the untrained ones, and beside the null ρ(N, N^½) (S = I).
  local _, G0_half = run:time('agop_init', function()
    return features.agop(init_model, agop_images, {batch = opt.agop_batch, progress = true, power = 0.5})
  end)
  if not root then return {}, result.final_test_acc end -- the rest only writes: rank 0's job
  local nfm, G, sqrtG = {}, {}, {}
  for l, conv in ipairs(model.convs) do
    nfm[l] = features.nfm(conv)
    -- G = W^T S W exactly: the small factor S (c_out^2) rebuilds the big G (see --expand)
    G[l], sqrtG[l] = features.agop_expand(S[l], conv), features.agop_expand(S[l], conv, 0.5)
    run:npy(string.format('conv%d_nfm.npy', l), nfm[l])
    run:npy(string.format('conv%d_agop.npy', l), G[l])
    run:npy(string.format('conv%d_agop_s.npy', l), S[l])
  end

  -- 4. the bootstrap over AGOP images, and ρ against the number of images
  local ci = {}
  if opt.boot_replicates > 0 then
    ci = run:time('bootstrap', function()
      return ansatz.bootstrap(model, sweep.blocks, {replicates = opt.boot_replicates,
        seed = seed})
    end)
    run:set('bootstrap', {replicates = opt.boot_replicates, blocks = #sweep.blocks,
      images = n_agop, from = string.format('train[1:%d]', n_agop), level = 0.95,
      method = 'BCa (bias-corrected and accelerated, jackknife over the blocks); blocks '
        .. 'of consecutive images drawn with replacement', seed = seed})
  end
  if #rho_ns > 0 then
    local csv, series = {'n,layer,corr_nfm_sqrt_agop,corr_nfm_sqrt_agop_offdiag'}, {}
    local ns_done = {}
    for _, n in ipairs(rho_ns) do if sweep.at[n] then ns_done[#ns_done + 1] = n end end
    table.sort(ns_done)
    for l, conv in ipairs(model.convs) do
      local x, y = {}, {}
      for _, n in ipairs(ns_done) do
        local c = ansatz.compare(conv, sweep.at[n][l])
        csv[#csv + 1] = string.format('%d,%d,%.6f,%.6f', n, l, c.rho, c.rho_off)
        x[#x + 1], y[#y + 1] = n, c.rho
      end
      series[l] = {x = x, y = y, label = 'conv' .. l, marker = 'circle'}
    end
    run:write('rho_vs_n.csv', table.concat(csv, '\n') .. '\n')
    require('agop.plot').lines{series = series, logx = true, xlabel = 'n (first n training images)',
      ylabel = 'ρ(CNFM, AGOP^½)', title = 'ρ(CNFM, AGOP^½) against the number of AGOP images',
      grid = true}:save(run:path('rho_vs_n.png'))
    run:set('rho_vs_n', {ns = ns_done, from = 'train[1:n]'})
  end

  -- 5. Table 1
  local rows = {}
  for l, conv in ipairs(model.convs) do
    rows[l] = {
      layer = l, shape = table.concat(conv.weight:size(), 'x'),
      weight_change = (conv.weight - init_w[l]):norm() / init_w[l]:norm(),
      corr_init_trained = features.corr(init_nfm[l], nfm[l]),
      corr_nfm_agop = features.corr(nfm[l], G[l]),
      corr_nfm_sqrt_agop = features.corr(nfm[l], sqrtG[l]),
      corr_init_nfm_sqrt_agop = features.corr(init_nfm[l], G0_half[l]),
      cos_init_trained = features.cosine(init_nfm[l], nfm[l]),
      cos_nfm_agop = features.cosine(nfm[l], G[l]),
      cos_nfm_sqrt_agop = features.cosine(nfm[l], sqrtG[l]),
      null_rho_nfm_nfm_half = (ansatz.null(conv)),
      null_rho_init = (ansatz.null(init_model.convs[l])),
      corr_nfm_sqrt_agop_offdiag = stats.corr_offdiag(nfm[l], sqrtG[l]),
      corr_init_trained_offdiag = stats.corr_offdiag(init_nfm[l], nfm[l]),
      ci_low = ci[l] and ci[l].low, ci_high = ci[l] and ci[l].high,
      ci_low_offdiag = ci[l] and ci[l].low_off, ci_high_offdiag = ci[l] and ci[l].high_off,
    }
  end
  local table1 = report.table1(rows)
  print(table1.text)
  run:write('table1.md', table1.markdown)
  run:write('table1.csv', table1.csv)
  run:set('table1', rows)

  -- 6. figures
  run:time('figures', function()
    report.figure_layer1(run:path('fig1_layer1_nfm_vs_agop.png'), nfm[1], sqrtG[1])
    report.figure_grid(run:path('fig_all_layers_nfm_vs_agop.png'), nfm, sqrtG)
    local digit = test_set.images[1]
    report.figure_feature_maps(run:path('fig_feature_maps.png'), model, digit, nfm, sqrtG,
      opt.vis_size, test_set.labels[1])
  end)

  run:finish({final_test_acc = result.final_test_acc})
  print('wrote ' .. out)
  return rows, result.final_test_acc
end

if #seeds <= 1 then
  study(opt.out, seeds[1] or opt.seed)
  return
end
-- several seeds: one complete run each, then mean ± std over them. A seed whose folder
-- holds a finished run.json is not run again (delete the folder to redo it).
local per_seed, accs = {}, {}
for i, seed in ipairs(seeds) do
  local dir = string.format('%s/seed%d', opt.out, seed)
  local done = util.exists(dir .. '/run.json') and json.decode(util.read_file(dir .. '/run.json'))
  if done and done.table1 and done.metrics then
    print(string.format('seed %d: finished in %s', seed, dir))
    per_seed[i], accs[i] = done.table1, done.metrics.final_test_acc
  else
    per_seed[i], accs[i] = study(dir, seed)
  end
  collectgarbage()
end
if not root then return end
local run = report.run(opt.out, 'scripts/vgg11_mnist.lua', opt)
local summary = report.table1_seeds(per_seed, seeds, accs)
print(summary.markdown)
run:write('table1_seeds.md', summary.markdown)
run:write('table1_seeds.csv', summary.csv)
run:set('seeds', seeds)
run:set('table1_seeds', summary.rows)
local m, sd, n = stats.mean_std(accs)
run:finish({final_test_acc_mean = m, final_test_acc_std = sd, seeds = n})
print('wrote ' .. opt.out)
