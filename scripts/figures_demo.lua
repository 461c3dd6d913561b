-- One example of every figure agop.plot draws, on small synthetic data (no training, no
-- data set needed), so that anyone can see what the figures look like and check them.
--
--   agoplua scripts/figures_demo.lua [--out results/figures] [--seed 1]
--
-- Writes DIR/*.png, the plotted data of some as CSV beside them, and DIR/run.json that
-- says what each figure shows.
local agop = require('agop')
local cli = require('agop.cli')
local json = require('agop.json')
local plot = require('agop.plot')
local util = require('agop.util')

local opt = cli.parse(arg, {
  {'out', 'results/figures', 'output folder'},
  {'seed', 1, 'generator seed for the synthetic data'},
}, {usage = 'agoplua scripts/figures_demo.lua [options]',
  about = 'Draws one example of every agop.plot figure into --out.'})

util.mkdir(opt.out)
local g = agop.Generator(opt.seed)
local t0 = agop.time and agop.time() or os.clock()
local figures = {}

local function save(name, fig, what, opts)
  local path = opt.out .. '/' .. name .. '.png'
  local files = fig:save(path, opts)
  local d = fig:describe()
  d.file = name .. '.png'
  d.what = what
  if #files > 1 then
    d.csv = {}
    for i = 2, #files do d.csv[#d.csv + 1] = files[i]:match('[^/]*$') end
  end
  figures[#figures + 1] = d
  print(string.format('%-22s %4dx%-4d %s', d.file, d.width, d.height, what))
end

-- A conv layer's filters as if after some training: 16 filters of 1x3x3 (random plus a
-- shared edge-detector component), and their CNFM W^T W (9x9).
local edge = agop.tensor{{-1, 0, 1}, {-2, 0, 2}, {-1, 0, 1}}:reshape(1, 9)
local W = agop.randn(g, 16, 9) * 0.5
for i = 1, 16 do
  local row = W:narrow(1, i, 1)
  row:add_(edge * (i % 3 - 1) * 0.8)
end
local nfm = W:t():mm(W)
save('heatmap', plot.heatmap(nfm, {title = 'conv1 CNFM  W^T W  (9x9)'}),
  'heatmap of a 9x9 CNFM (viridis, 1-based indices, colorbar)')

-- A signed matrix with some missing entries, centred at 0 on RdBu.
local C = agop.randn(g, 12, 12)
C = (C + C:t()) * 0.5
C:set(3, 7, 0 / 0)
C:set(7, 3, 0 / 0)
save('heatmap_symmetric', plot.heatmap(C, {title = 'symmetric, with NaN', symmetric = true,
  xlabel = 'column', ylabel = 'row'}),
  'signed 12x12 matrix, symmetric range on RdBu_r, two NaN entries drawn gray')

-- A large matrix (576x576, like conv2's 64*3*3 patches): area-averaged to the screen.
local B = agop.randn(g, 576, 64)
local big = B:mm(B:t()) * (1 / 64)
save('heatmap_large', plot.heatmap(big, {title = '576x576 AGOP-sized matrix', cmap = 'magma',
  vmin = -0.5, vmax = 1.5}), '576x576 matrix drawn with area averaging, magma, fixed range')

-- The filters themselves, and smooth "feature maps".
local filters, titles = {}, {}
for i = 1, 16 do
  filters[i] = W:narrow(1, i, 1):reshape(3, 3)
  titles[i] = 'filter ' .. i
end
save('images_filters', plot.images(filters, {titles = titles, title = 'conv1 filters',
  cmap = 'RdBu_r', symmetric = true, cols = 8}),
  '16 3x3 filters, each on its own symmetric RdBu_r range')

local maps = {}
for i = 1, 6 do
  local cx, cy, s = 6 + 16 * agop.rand(g, 1):get(1), 6 + 16 * agop.rand(g, 1):get(1), 3 + i
  local flat = {}
  for y = 1, 28 do
    for x = 1, 28 do
      flat[#flat + 1] = math.exp(-((x - cx) ^ 2 + (y - cy) ^ 2) / (2 * s * s))
        + 0.15 * math.sin(x * i / 4)
    end
  end
  maps[i] = agop.from_table(flat, 28, 28)
end
save('images_maps', plot.images(maps, {title = 'feature maps ||M p||, min-max normalized',
  cmap = 'viridis', cols = 3, titles = {'img 1', 'img 2', 'img 3', 'img 4', 'img 5', 'img 6'}}),
  'six 28x28 maps, per-image min-max, viridis')

-- Training curves: mean +- std over seeds as a band, a dashed test curve.
local epochs, train_m, train_s, test_m = {}, {}, {}, {}
for e = 1, 30 do
  epochs[e] = e
  train_m[e] = 2.3 * math.exp(-e / 6) + 0.04 + 0.02 * math.sin(e)
  train_s[e] = 0.12 * math.exp(-e / 15)
  test_m[e] = 2.3 * math.exp(-e / 8) + 0.09
end
save('lines', plot.lines{series = {
  {x = epochs, y = train_m, band = train_s, label = 'train (mean ± std, 3 seeds)'},
  {x = epochs, y = test_m, label = 'test', dash = true}},
  xlabel = 'epoch', ylabel = 'cross-entropy', title = 'Training loss'},
  'two curves, a shaded band (std) and a dashed line, legend placed automatically',
  {csv = true})
save('lines_log', plot.lines{series = {
  {x = epochs, y = train_m, label = 'train', marker = 'o'},
  {x = epochs, y = test_m, label = 'test', marker = 'square'}},
  xlabel = 'epoch', ylabel = 'loss', title = 'Training loss (log scale)', logy = true, grid = true},
  'the same curves on a log y axis with markers and grid')

-- Table 1 of the seed study (report.seed_table1), as grouped bars with value labels.
local layers = {}
for l = 1, 8 do layers[l] = 'conv' .. l end
save('bars', plot.bars{groups = layers, series = {
  {label = 'corr(initial CNFM, trained CNFM)', values = {.575, .111, .107, .068, .109, .059, .067, .044}},
  {label = 'corr(trained CNFM, AGOP^1/2)', values = {.880, .903, .900, .814, .799, .695, .713, .661}}},
  ylabel = 'Pearson correlation', title = 'Seed study, Table 1 (reference values)',
  values = '%.2f', ylim = {0, 1.12}},
  "grouped bars of the seed study's Table 1 with value labels", {csv = true})
save('bars_signed', plot.bars{groups = {'kaiming', 'orthogonal', 'nfm', 'agop', 'agop_scaled'},
  series = {{label = 'change in accuracy (pt)', values = {0, 0.4, -1.2, 2.1, 1.6},
    errors = {0.3, 0.5, 0.8, 0.6, 0.4}}},
  ylabel = 'accuracy - baseline (pt)', title = 'Signed values with error bars', values = '%+.1f'},
  'negative and positive bars around a zero line, error bars')

-- Everything composes: a 2x2 figure.
local fig = plot.figure{rows = 2, cols = 2, title = 'Layer 1 at a glance', panel_size = {520, 400}}
fig:panel(1, 'heatmap', nfm, {title = 'CNFM'})
fig:panel(2, 'images', filters, {title = 'filters', cmap = 'RdBu_r', symmetric = true, cols = 8})
fig:panel(3, 'lines', {series = {{x = epochs, y = train_m, band = train_s, label = 'train'},
  {x = epochs, y = test_m, label = 'test'}}, xlabel = 'epoch', ylabel = 'loss', title = 'Loss'})
fig:panel(4, 'bars', {groups = {'conv1', 'conv2', 'conv3'}, series = {{label = 'rho',
  values = {.880, .903, .900}}}, ylim = {0, 1}, title = 'Correlation', values = true})
save('figure', fig, 'a 2x2 figure: heatmap, images, lines and bars panels')

local run = {
  script = 'scripts/figures_demo.lua',
  seed = opt.seed,
  out = opt.out,
  figures = figures,
  seconds = (agop.time and agop.time() or os.clock()) - t0,
  note = 'synthetic data; the bars repeat the seed study\'s Table 1 (report.seed_table1)',
}
json.write(opt.out .. '/run.json', run, {pretty = true})
print('wrote ' .. opt.out .. '/run.json')
