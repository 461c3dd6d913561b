-- The initialization study: how does initializing VGG11 from NFM or AGOP matrices change
-- how it trains? Every rule of agop.init, on MNIST and Fashion-MNIST targets, with source
-- matrices from VGG11 trained on MNIST and on Fashion-MNIST (same task and transfer),
-- several seeds, one optimizer and budget for all.
--
--   agoplua scripts/init_study.lua                 (the default study, under an hour here)
--   agoplua scripts/init_study.lua --quick         (a test-sized run)
--   agoplua scripts/init_study.lua --rules-file my_rules.lua --rules kaiming_normal,my_rule
--
-- Finished runs are kept in DIR/runs.json (written atomically after each run), so an
-- interrupted study started again with the same options continues where it stopped.
local agop = require('agop')
local cli = require('agop.cli')
local util = require('agop.util')
local json = require('agop.json')
local models = require('agop.models')
local data = require('agop.data')
local train = require('agop.train')
local features = require('agop.features')
local init = require('agop.init')
local report = require('agop.report')
local dist = require('agop.dist') -- under mpirun: runs go to ranks, rank 0 writes
local study = require('agop.study')

-- 'loss after the first 100 steps': the mean train loss over steps 91..100 (the log's
-- 10-step window), or the last window before it in runs shorter than 100 steps.
local LOSS_STEP = 100

local SOURCE_RULES = {nfm = 'nfm', agop = 'agop', kaiming_nfm = 'nfm', kaiming_agop = 'agop',
  nfm_scaled = 'nfm', agop_scaled = 'agop'}

local opt, given = cli.parse(arg, {
  {'targets', 'mnist,fashion-mnist', 'data sets to train on'},
  {'sources', 'mnist,fashion-mnist', 'data sets the source networks were trained on'},
  {'rules', 'kaiming_normal,torch_default,orthogonal,nfm,agop,kaiming_nfm,kaiming_agop,nfm_scaled,agop_scaled,agop_at_init',
    'initialization rules (names registered in agop.init)'},
  {'rules_file', '', 'a Lua file that registers more rules (init.register) before the study'},
  {'seeds', 3, 'seeds per (target, rule, source)'},
  {'width', 0.125, 'VGG11 channel width multiplier for sources and targets'},
  {'epochs', 2, 'training epochs of every target run'},
  {'batch', 64, 'mini-batch size'},
  {'lr', 0.02, 'peak learning rate (SGD, momentum 0.9, cosine schedule, same for all)'},
  {'warmup', 0, 'linear warm-up steps (0: none, so that the rules differ from step 1)'},
  {'train_limit', 10000, 'training images per target run (first N in file order)'},
  {'test_limit', 5000, 'test images (first N)'},
  {'source_epochs', 2, 'epochs to train a source network that is not cached'},
  {'source_limit', 20000, 'training images for a source network'},
  {'source_optimizer', 'sgd', 'how a source network is trained (sgd: with momentum, at --lr)',
    {'sgd', 'adam'}},
  {'source_init', 'kaiming', "a source network's conv init (pytorch: PyTorch's default)",
    {'kaiming', 'pytorch'}},
  {'source_lr', 0.0, 'peak learning rate of a source network (0: --lr)'},
  {'source', '', 'a VGG11 checkpoint trained on MNIST (e.g. by vgg11_mnist.lua --width W) to use as the MNIST source; its width must equal --width'},
  {'agop_samples', 500, 'images for the source AGOPs (first N of the source training set)'},
  {'init_batch', 128, 'images agop_at_init computes its AGOPs on'},
  {'threads', 0, 'threads (0 = AGOP_THREADS or all cores)'},
  {'out', '', 'output folder (default results/init_study, or results/init_study_quick)'},
  {'fresh', false, 'ignore finished runs in DIR/runs.json'},
  {'quick', false, 'a test-sized study: width 0.125, 1 seed, 1000 images, 1 epoch'},
}, {usage = 'agoplua scripts/init_study.lua [options]',
    about = 'Compares initialization rules (agop.init) by how VGG11 trains from them.'})

if opt.quick then
  local quick = {width = 0.125, seeds = 1, epochs = 1, train_limit = 1000, test_limit = 1000,
    source_epochs = 1, source_limit = 2000, agop_samples = 100, init_batch = 32,
    rules = 'kaiming_normal,nfm,agop_scaled', targets = 'mnist', sources = 'mnist'}
  for k, v in pairs(quick) do if not given[k] then opt[k] = v end end
end
if opt.out == '' then opt.out = opt.quick and 'results/init_study_quick' or 'results/init_study' end
if opt.threads > 0 then agop.set_threads(opt.threads) end
if opt.rules_file ~= '' then dofile(opt.rules_file) end

local split = util.split
local targets, sources, rules = split(opt.targets), split(opt.sources), split(opt.rules)
for _, r in ipairs(rules) do init.get(r) end -- unknown rules fail now, not an hour later

local run = report.run(opt.out, 'scripts/init_study.lua', opt)
local t_start = agop.time()
local function log(fmt, ...)
  if not dist.is_root() then return end -- inside dist.sweep, each rank logs its own runs
  print(string.format('[%s] ' .. fmt, util.duration(agop.time() - t_start), ...))
end

local datasets = {}
local function dataset(name, split_, limit)
  local key = name .. split_ .. limit
  datasets[key] = datasets[key] or data.load(name, split_, {limit = limit > 0 and limit or nil})
  return datasets[key]
end

local function vgg(seed, conv_init)
  return models.vgg11{in_channels = 1, num_classes = 10, width = opt.width,
    init = conv_init or 'kaiming', generator = agop.Generator(seed)}
end

-- How the study trains its own sources; a cached source made another way is an error.
local source_recipe = {optimizer = opt.source_optimizer, init = opt.source_init,
  lr = opt.source_lr > 0 and opt.source_lr or opt.lr, epochs = opt.source_epochs,
  images = opt.source_limit, width = opt.width}
local function check_cached_recipe(dir)
  local f = dir .. '/source.json'
  if not util.exists(f) then return end
  local had = json.decode(util.read_file(f))
  for _, k in ipairs{'optimizer', 'init', 'lr', 'epochs', 'images'} do
    local was = had[k] or ({optimizer = 'sgd', init = 'kaiming', lr = opt.lr})[k]
    if was ~= source_recipe[k] then
      error(string.format('%s: the cached source was trained with %s = %s, this study asks for %s; '
        .. 'use another --out or delete %s', f, k, tostring(was), tostring(source_recipe[k]), dir), 0)
    end
  end
end

-- 1. source networks and their matrices (cached under DIR/sources/<name>/)
local source = {}
for _, s in ipairs(sources) do
  local dir = string.format('%s/sources/%s', opt.out, s)
  local path = dir .. '/model.safetensors'
  if s == 'mnist' and opt.source ~= '' then
    path = opt.source
    if not util.exists(path) then error(string.format('--source %s: no such file', path), 0) end
  end
  local model
  if path ~= opt.source then check_cached_recipe(dir) end
  if util.exists(path) then
    model = models.load(path)
    if math.abs(model.config.width - opt.width) > 1e-9 then
      error(string.format('%s has width %g, the study uses --width %g: source and target filters must have the same size',
        path, model.config.width, opt.width), 0)
    end
    log('source %s: %s', s, path)
  else
    log('source %s: training VGG11 (width %g, %s init, %s lr %g) on %d images, %d epochs', s,
      opt.width, source_recipe.init, source_recipe.optimizer, source_recipe.lr, opt.source_limit,
      opt.source_epochs)
    if dist.is_root() then util.mkdir(dir) end
    model = vgg(1000, source_recipe.init)
    local init_model = vgg(1000, source_recipe.init)
    local r = train.fit(model, dataset(s, 'train', opt.source_limit), dataset(s, 'test', opt.test_limit),
      {epochs = opt.source_epochs, optimizer = source_recipe.optimizer, lr = source_recipe.lr,
       batch = opt.batch, seed = 1000, out = dir, resume = true, quiet = false,
       warmup = math.min(50, opt.source_limit // opt.batch // 4)})
    if dist.is_root() then models.save(model, path) end
    -- how far training moved each layer from its initialization (see README: Table 1)
    local moved, rho = study.drift(model, init_model)
    local info = {dataset = s, test_acc = r.final_test_acc, weight_change = moved,
      corr_init_trained = rho}
    for k, v in pairs(source_recipe) do info[k] = v end
    if dist.is_root() then util.write_file(dir .. '/source.json', json.encode(info, {indent = 2}) .. '\n') end
  end
  local mats = {nfm = {}, agop = {}}
  local imgs = dataset(s, 'train', opt.source_limit).images
  local n = math.min(opt.agop_samples, imgs:size(1))
  local G = features.agop(model, imgs:narrow(1, 1, n), {batch = 50})
  for l, conv in ipairs(model.convs) do
    mats.nfm[l] = features.nfm(conv)
    mats.agop[l] = G[l]
  end
  source[s] = {model = model, mats = mats, path = path, agop_from = string.format('%s train[1:%d]', s, n)}
end

-- 2. every (target, rule, source, seed) run; finished ones are kept in runs.json
local runs_path = opt.out .. '/runs.json'
local done = (not opt.fresh and util.exists(runs_path)) and json.decode(util.read_file(runs_path)) or {}
local function save_runs() util.write_file(runs_path, json.encode(done, {indent = 1}) .. '\n') end

local jobs = {}
for _, t in ipairs(targets) do
  for _, r in ipairs(rules) do
    local srcs = SOURCE_RULES[r] and sources or {'-'}
    for _, s in ipairs(srcs) do
      for seed = 1, opt.seeds do
        jobs[#jobs + 1] = {target = t, rule = r, source = s, seed = seed,
          key = string.format('%s|%s|%s|%d', t, r, s, seed)}
      end
    end
  end
end

-- the runs are independent: under mpirun, dist.sweep hands them to the ranks (each one a
-- world of its own) and rank 0 merges the results into runs.json after every round
done = dist.sweep(jobs, function(job, j)
  do
    local train_set = dataset(job.target, 'train', opt.train_limit)
    local test_set = dataset(job.target, 'test', opt.test_limit)
    local model = vgg(job.seed)
    local ctx = {generator = agop.Generator(job.seed * 7919 + 17),
      batch = train_set.images:narrow(1, 1, math.min(opt.init_batch, train_set.images:size(1)))}
    if job.source ~= '-' then ctx.source = source[job.source].mats end
    local t0 = agop.time()
    init.apply(model, job.rule, ctx)
    local init_seconds = agop.time() - t0
    local nfm0 = {}
    for l, conv in ipairs(model.convs) do nfm0[l] = features.nfm(conv) end
    local acc0 = train.evaluate(model, test_set)
    local ok, r = pcall(train.fit, model, train_set, test_set, {epochs = opt.epochs, batch = opt.batch,
      lr = opt.lr, warmup = opt.warmup, seed = job.seed, log_every = opt.quick and 4 or 10, quiet = true})
    if not ok then
      if not tostring(r):find('train: loss is') then error(r, 0) end
      -- a rule whose network diverges is a result, not a failure of the study
      log('%3d/%d %-14s %-14s source %-13s seed %d: diverged (%s)', j, #jobs, job.target, job.rule,
        job.source, job.seed, tostring(r):match('loss is %S+ at step %d+') or tostring(r))
      return {target = job.target, rule = job.rule, source = job.source, seed = job.seed,
        acc_init = acc0, diverged = true, error = tostring(r), init_seconds = init_seconds,
        corr_init_final = {}, curve = {}}
    end
    local corr = {}
    for l, conv in ipairs(model.convs) do corr[l] = features.corr(nfm0[l], features.nfm(conv)) end
    local curve, loss100 = {}, nil
    for _, row in ipairs(r.log) do
      if not row.test_acc then
        curve[#curve + 1] = {row.step, row.loss}
        if row.step <= LOSS_STEP then loss100 = row.loss end -- the window ending at step 100
      end
    end
    log('%3d/%d %-14s %-14s source %-13s seed %d: epoch-1 acc %.2f%%, final %.2f%% (init %.2fs)', j, #jobs,
      job.target, job.rule, job.source, job.seed, 100 * (r.test_acc[1] or 0), 100 * r.final_test_acc, init_seconds)
    return {target = job.target, rule = job.rule, source = job.source, seed = job.seed,
      acc_init = acc0, acc_epoch1 = r.test_acc[1], acc_final = r.final_test_acc,
      loss100 = loss100, corr_init_final = corr, curve = curve, seconds = r.seconds,
      init_seconds = init_seconds, diverged = false}
  end
end, {done = done, on_result = function(key, result) done[key] = result save_runs() end})
if not dist.is_root() then return end -- what follows writes the report

-- 3. the report: mean ± std over seeds
local function stats(xs)
  local n, s, ss = 0, 0, 0
  for _, x in ipairs(xs) do if x == x then n, s = n + 1, s + x end end
  if n == 0 then return nil, nil, 0 end
  local m = s / n
  for _, x in ipairs(xs) do if x == x then ss = ss + (x - m) ^ 2 end end
  return m, n > 1 and math.sqrt(ss / (n - 1)) or 0, n
end

local groups, order = {}, {}
for _, job in ipairs(jobs) do
  local gk = string.format('%s|%s|%s', job.target, job.rule, job.source)
  if not groups[gk] then
    groups[gk] = {target = job.target, rule = job.rule, source = job.source, runs = {}}
    order[#order + 1] = gk
  end
  local key = string.format('%s|%s|%s|%d', job.target, job.rule, job.source, job.seed)
  table.insert(groups[gk].runs, done[key])
end

local md = {'| target | rule | source | acc epoch 1 (%) | acc final (%) | loss @100 steps | ρ(init, final CNFM) layers 1..8 | seeds | diverged |',
  '|---|---|---|---|---|---|---|---|---|'}
local csv = {'target,rule,source,acc_epoch1_mean,acc_epoch1_std,acc_final_mean,acc_final_std,loss100_mean,loss100_std,' ..
  'corr_l1,corr_l2,corr_l3,corr_l4,corr_l5,corr_l6,corr_l7,corr_l8,seeds,diverged'}
local summary = {}
for _, gk in ipairs(order) do
  local g = groups[gk]
  local a1, af, l100, corr = {}, {}, {}, {}
  for l = 1, 8 do corr[l] = {} end
  local diverged = 0
  for _, r in ipairs(g.runs) do
    if r.diverged then
      diverged = diverged + 1
    else
      a1[#a1 + 1] = 100 * (r.acc_epoch1 or 0 / 0)
      af[#af + 1] = 100 * r.acc_final
      l100[#l100 + 1] = r.loss100 or 0 / 0
      for l = 1, 8 do corr[l][#corr[l] + 1] = r.corr_init_final[l] end
    end
  end
  local m1, s1, n = stats(a1)
  local mf, sf = stats(af)
  local ml, sl = stats(l100)
  local cm = {}
  for l = 1, 8 do cm[l] = (stats(corr[l])) end
  local cs = {}
  for l = 1, 8 do cs[l] = cm[l] and string.format('%.2f', cm[l]) or '-' end
  local function pm(m, sd, f) return m and string.format(f .. ' ± ' .. f, m, sd) or '-' end
  local function num(x, f) return x and string.format(f, x) or '' end
  md[#md + 1] = string.format('| %s | %s | %s | %s | %s | %s | %s | %d | %d |', g.target, g.rule, g.source,
    pm(m1, s1, '%.2f'), pm(mf, sf, '%.2f'), pm(ml, sl, '%.3f'), table.concat(cs, ' '), n, diverged)
  csv[#csv + 1] = table.concat({g.target, g.rule, g.source, num(m1, '%.4f'), num(s1, '%.4f'),
    num(mf, '%.4f'), num(sf, '%.4f'), num(ml, '%.5f'), num(sl, '%.5f'), table.concat(cs, ','), n,
    diverged}, ',')
  summary[#summary + 1] = {target = g.target, rule = g.rule, source = g.source, acc_epoch1 = {m1, s1},
    acc_final = {mf, sf}, loss100 = {ml, sl}, corr_init_final = cm, seeds = n, diverged = diverged}
end
md[#md + 1] = ''
md[#md + 1] = string.format('VGG11 width %g, %d training images, %d epochs, batch %d, SGD lr %g (momentum 0.9, cosine), ' ..
  '%d seeds; mean ± std over the seeds that did not diverge (a NaN or infinite loss stops a run; the last column counts them). ' ..
  'Source matrices: VGG11 of the same width trained on the source data set; AGOP over %d images. ' ..
  'For context, the seed study (CIFAR10, one run each, ImageNet source matrices): Kaiming-normal 77.10, NFM 79.32, ' ..
  'Kaiming-NFM 78.69, AGOP 78.61.', opt.width, opt.train_limit, opt.epochs, opt.batch, opt.lr, opt.seeds, opt.agop_samples)
run:write('table.md', table.concat(md, '\n') .. '\n')
run:write('table.csv', table.concat(csv, '\n') .. '\n')
print(table.concat(md, '\n'))

report.figure_init_curves(run:path('learning_curves.png'), groups, order, targets)

local src_info = {}
for s, v in pairs(source) do src_info[s] = {path = v.path, agop_from = v.agop_from} end
run:set('sources', src_info)
run:set('summary', summary)
run:set('runs', #jobs)
run:finish({groups = #order})
print('wrote ' .. opt.out)
