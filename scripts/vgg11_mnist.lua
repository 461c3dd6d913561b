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
    epochs = 2, lr = 0.02, batch = 32, warmup = 20, vis_size = 64}
  for k, v in pairs(quick) do if not given[k] then opt[k] = v end end
end
if opt.out == '' then opt.out = opt.quick and 'results/vgg11_mnist_quick' or 'results/vgg11_mnist' end
if opt.threads > 0 then agop.set_threads(opt.threads) end
if opt.expand then -- rebuild the big matrices of an existing run, and stop
  if root then report.expand_matrices(opt.out, {force = opt.force}) end
  return
end

local run = report.run(opt.out, 'scripts/vgg11_mnist.lua', opt)
run:set('ranks', dist.size())

-- 1. the network, and its initial weights
agop.manual_seed(opt.seed)
local model = models.vgg11{in_channels = 1, num_classes = 10, input_size = 32,
  width = opt.width, init = opt.init, generator = agop.Generator(opt.seed)}
if root then print(model) end
if root and not (opt.resume and agop.util.exists(opt.out .. '/model_init.safetensors')) then
  models.save(model, opt.out .. '/model_init.safetensors')
end
dist.barrier() -- every rank reads the initial weights rank 0 wrote
local init_nfm, init_w, init_model = {}, {}, nil
do -- the initial CNFMs come from the saved initial weights (so a resumed run agrees)
  init_model = models.load(opt.out .. '/model_init.safetensors')
  for l, conv in ipairs(init_model.convs) do
    init_w[l] = conv.weight
    init_nfm[l] = features.nfm(conv)
    if root then run:npy(string.format('conv%d_nfm_init.npy', l), init_nfm[l]) end
  end
end

-- 2. training
local train_set = data.load('mnist', 'train', {limit = opt.train_limit > 0 and opt.train_limit or nil})
local test_set = data.load('mnist', 'test', {limit = opt.test_limit > 0 and opt.test_limit or nil})
if root then print(string.format('data: %d training, %d test images (padded to 32x32, normalized)',
  train_set.images:size(1), test_set.images:size(1))) end
local result = run:time('train', function()
  return train.fit(model, train_set, test_set, {
    epochs = opt.epochs, batch = opt.batch, optimizer = opt.optimizer, lr = opt.lr,
    momentum = opt.momentum,
    weight_decay = opt.weight_decay, warmup = opt.warmup, seed = opt.seed, out = opt.out,
    resume = opt.resume})
end)
if root then models.save(model, opt.out .. '/model.safetensors') end
run:set('train', {epochs = opt.epochs, steps = result.steps, seconds = result.seconds,
  img_per_s = result.img_per_s, test_acc_by_epoch = result.test_acc,
  final_test_acc = result.final_test_acc})
if root then print(string.format('test accuracy %.2f%% after %d epochs (%.0f img/s)',
  100 * result.final_test_acc, opt.epochs, result.img_per_s)) end

-- 3. CNFM and patch-AGOP of every conv layer
local n_agop = math.min(opt.agop_samples, train_set.images:size(1))
local agop_images = train_set.images:narrow(1, 1, n_agop)
local G, G_half, S = run:time('agop', function()
  return features.agop(model, agop_images, {batch = opt.agop_batch, progress = true, power = 0.5})
end)
run:set('agop', {samples = n_agop, from = string.format('train[1:%d]', n_agop),
  classes = 10, logits = 'before softmax', mode = 'evaluation', batch = opt.agop_batch})
-- the control: the same matrices of the untrained network. CNFM and AGOP are both
-- quadratic forms in W (N = W^T W, G = W^T S W / n), so they correlate wherever S is
-- near a multiple of the identity, learned features or not; the trained values mean
-- something only beside the untrained ones.
local _, G0_half = run:time('agop_init', function()
  return features.agop(init_model, agop_images, {batch = opt.agop_batch, progress = true, power = 0.5})
end)
if not root then return end -- the rest only writes: rank 0's job
local nfm, sqrtG = {}, {}
for l, conv in ipairs(model.convs) do
  nfm[l] = features.nfm(conv)
  sqrtG[l] = G_half[l]
  run:npy(string.format('conv%d_nfm.npy', l), nfm[l])
  run:npy(string.format('conv%d_agop.npy', l), G[l])
  -- G = W^T S W exactly: the small factor S (c_out^2) rebuilds the big G (see --expand)
  run:npy(string.format('conv%d_agop_s.npy', l), S[l])
end

-- 4. Table 1
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
  }
end
local table1 = report.table1(rows)
print(table1.text)
run:write('table1.md', table1.markdown)
run:write('table1.csv', table1.csv)
run:set('table1', rows)

-- 5. figures
run:time('figures', function()
  report.figure_layer1(run:path('fig1_layer1_nfm_vs_agop.png'), nfm[1], sqrtG[1])
  report.figure_grid(run:path('fig_all_layers_nfm_vs_agop.png'), nfm, sqrtG)
  local digit = test_set.images[1]
  report.figure_feature_maps(run:path('fig_feature_maps.png'), model, digit, nfm, sqrtG,
    opt.vis_size, test_set.labels[1])
end)

run:finish({final_test_acc = result.final_test_acc})
print('wrote ' .. opt.out)
