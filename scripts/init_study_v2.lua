-- The initialization study, version 2 (issue 14): does initializing VGG11 from a trained
-- network's NFM or AGOP help it train, and if it changes anything, is that the matrix's
-- norm, its spectrum or its subspace?
--
--   agoplua scripts/init_study_v2.lua             (-> results/init_study_v2/)
--   agoplua scripts/init_study_v2.lua --quick     (a test-sized study)
--
-- Design: the 60,000 MNIST (or Fashion-MNIST) training images are split three ways -
-- targets train on train[1:T], pick their learning rate on the held-out train[T+1:T+V],
-- and the source networks whose matrices seed the rules train on train[S:S+N-1], disjoint
-- from both. Every rule (and the controls iso/spectrum/subspace_matched of the --control-of
-- rules) runs at every rate of --lrs with seeds 1..--sweep-seeds; each cell's rate is the
-- one with the best mean held-out accuracy, and the remaining seeds run at that rate only.
-- Seeds are paired across rules (same classifier init, same shuffling), so every cell is
-- compared with Kaiming-normal by paired differences with a 95 % t interval. Test
-- accuracy is on the full test set and never chooses anything.
--
-- Finished runs are kept in DIR/runs.json by run id; started again with the same options,
-- the study continues where it stopped (sources resume from their checkpoints too).
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
local study = require('agop.study')

local opt, given = cli.parse(arg, {
  {'targets', 'mnist,fashion-mnist', 'data sets the target networks train on'},
  {'transfer', false, 'also seed each target from the other data set\'s source'},
  {'rules', 'kaiming_normal,orthogonal,nfm,agop,nfm_scaled,agop_scaled',
    'initialization rules (names registered in agop.init); kaiming_normal is the baseline'},
  {'controls', 'iso_matched,spectrum_matched,subspace_matched',
    'controls run for every rule of --control-of (empty: none)'},
  {'control_of', 'nfm,agop', 'covariance rules whose Σ the controls take apart'},
  {'rules_file', '', 'a Lua file that registers more rules (init.register) first'},
  {'seeds', 5, 'seeds per cell (paired across rules)'},
  {'sweep_seeds', 2, 'seeds 1..K run at every learning rate; the others at the best one'},
  {'lrs', '0.005,0.01,0.02', 'learning rates swept per rule (SGD, momentum 0.9, cosine)'},
  {'width', 0.25, 'VGG11 channel width multiplier for sources and targets'},
  {'epochs', 2, 'epochs of every target run'},
  {'batch', 64, 'mini-batch size'},
  {'warmup', 0, 'linear warm-up steps of target runs (0: the rules differ from step 1)'},
  {'target_images', 25000, 'targets train on train[1:T]'},
  {'val_images', 5000, 'held-out images train[T+1:T+V] that choose the learning rate'},
  {'source_from', 30001, 'sources train on train[S:S+N-1], disjoint from the targets\''},
  {'source_images', 30000, 'N: images a source network trains on'},
  {'test_limit', 0, 'test images (0 = the full 10,000)'},
  {'source_epochs', 5, 'epochs of a source network'},
  {'source_optimizer', 'adam', 'how a source network trains', {'sgd', 'adam'}},
  {'source_init', 'pytorch', "a source network's conv init", {'kaiming', 'pytorch'}},
  {'source_lr', 0.001, 'peak learning rate of a source network'},
  {'agop_samples', 1000, 'images of the source AGOPs (the first of the source range)'},
  {'diag_images', 256, 'held-out images of the signal-propagation diagnostics at init'},
  {'init_batch', 128, 'images agop_at_init computes its AGOPs on'},
  {'threads', 0, 'threads (0 = AGOP_THREADS or all cores)'},
  {'out', '', 'output folder (default results/init_study_v2, or results/init_study_v2_quick)'},
  {'fresh', false, 'ignore finished runs in DIR/runs.json'},
  {'quick', false, 'a test-sized study: width 0.125, MNIST, 2 seeds, 2 rates, 600 images'},
}, {usage = 'agoplua scripts/init_study_v2.lua [options]',
    about = 'Initialization rules vs Kaiming: paired seeds, a rate sweep, disjoint sources, controls.'})

if opt.quick then
  local quick = {width = 0.125, seeds = 2, sweep_seeds = 1, lrs = '0.01,0.02', epochs = 1,
    target_images = 600, val_images = 200, source_from = 1001, source_images = 1000,
    test_limit = 500, source_epochs = 1, agop_samples = 100, diag_images = 32, init_batch = 32,
    rules = 'kaiming_normal,nfm', control_of = 'nfm', targets = 'mnist'}
  for k, v in pairs(quick) do if not given[k] then opt[k] = v end end
end
if opt.out == '' then opt.out = opt.quick and 'results/init_study_v2_quick' or 'results/init_study_v2' end
if opt.threads > 0 then agop.set_threads(opt.threads) end
if opt.rules_file ~= '' then dofile(opt.rules_file) end

local function usage(msg)
  io.stderr:write(string.format('%s: %s\n', arg[0], msg))
  os.exit(2)
end
local split = util.split
local targets, rules, controls, control_of = split(opt.targets), split(opt.rules),
  split(opt.controls), split(opt.control_of)
local lrs = {}
for _, w in ipairs(split(opt.lrs)) do
  lrs[#lrs + 1] = tonumber(w) or usage('--lrs expects numbers, got ' .. w)
end
for _, r in ipairs(rules) do init.get(r) end -- unknown rules fail now, not an hour later
for _, r in ipairs(controls) do init.get(r) end
for _, r in ipairs(control_of) do
  if not init.covariances[r] then usage(string.format('--control-of: %s is not a covariance rule', r)) end
end
if opt.sweep_seeds < 1 or opt.sweep_seeds > opt.seeds then usage('--sweep-seeds must be in 1..--seeds') end
-- the three ranges of the training set: disjoint, inside its 60,000 images
local T, V, S0, NS = opt.target_images, opt.val_images, opt.source_from, opt.source_images
if T < 1 or V < 1 or NS < 1 then usage('--target-images, --val-images, --source-images must be >= 1') end
if S0 <= T + V then
  usage(string.format('the source images train[%d:%d] overlap the targets\' train[1:%d] (training and '
    .. 'held-out): sources must be trained on other images (--source-from > %d)', S0, S0 + NS - 1, T + V, T + V))
end
if S0 + NS - 1 > 60000 then usage(string.format('train[%d:%d] is beyond the 60,000 training images', S0, S0 + NS - 1)) end

local run = report.run(opt.out, 'scripts/init_study_v2.lua', opt)
local t_start = agop.time()
local dist = require('agop.dist') -- under mpirun: runs go to ranks, rank 0 alone writes
local root = dist.is_root()
local function log(f, ...) if root then print(string.format('[%s] ' .. f, util.duration(agop.time() - t_start), ...)) end end

-- 1. data: the three ranges of each data set's training images, and its test set
local sets = {}
local function dataset(name)
  if sets[name] then return sets[name] end
  local tr = data.load(name, 'train', {limit = S0 + NS - 1})
  local function range(first, n)
    return {images = tr.images:narrow(1, first, n), labels = tr.labels:narrow(1, first, n)}
  end
  sets[name] = {train = range(1, T), val = range(T + 1, V), source = range(S0, NS),
    test = data.load(name, 'test', {limit = opt.test_limit > 0 and opt.test_limit or nil})}
  return sets[name]
end
local design = {target = string.format('train[1:%d]', T),
  heldout = string.format('train[%d:%d]', T + 1, T + V),
  source = string.format('train[%d:%d]', S0, S0 + NS - 1),
  test = opt.test_limit > 0 and string.format('test[1:%d]', opt.test_limit) or 'test (all 10000)',
  lr_choice = string.format('per cell, the rate of --lrs with the best mean held-out accuracy over seeds 1..%d '
    .. '(a diverged run counts as 0); never the test set', opt.sweep_seeds)}
run:set('design', design)

-- images per evaluation forward: at width 0.25, 100 evaluates about twice as fast per
-- image as train.evaluate's default 500 on this machine (measured: 1.3 vs 3-4 ms)
local EVAL_BATCH = 100

local function vgg(seed, conv_init)
  return models.vgg11{in_channels = 1, num_classes = 10, width = opt.width,
    init = conv_init or 'kaiming', generator = agop.Generator(seed)}
end

-- time of one training step and of evaluating one image, measured here and now
local function measure()
  local d = dataset(targets[1])
  local m = vgg(99)
  local t0 = agop.time()
  train.fit(m, d.train, nil, {epochs = 1, batch = opt.batch, lr = 0.01, max_steps = 6, quiet = true})
  local step = (agop.time() - t0) / 6
  t0 = agop.time()
  local n = math.min(500, d.val.images:size(1))
  train.evaluate(m, {images = d.val.images:narrow(1, 1, n), labels = d.val.labels:narrow(1, 1, n)},
    EVAL_BATCH)
  return step, (agop.time() - t0) / n
end
local step_s, eval_s = measure()
local steps_per_run = opt.epochs * ((T + opt.batch - 1) // opt.batch)
local ntest = dataset(targets[1]).test.images:size(1)
local per_run = steps_per_run * step_s + (opt.epochs * ntest + V + opt.diag_images) * eval_s
log('measured: %.3fs a training step, %.2fms an evaluated image: about %s a target run',
  step_s, 1000 * eval_s, util.duration(per_run))

-- 2. sources: trained on the source range, cached under DIR/sources/<name>/
local BAR = {mnist = 0.985, ['fashion-mnist'] = 0.89}
local recipe = {optimizer = opt.source_optimizer, init = opt.source_init, lr = opt.source_lr,
  epochs = opt.source_epochs, images = design.source, width = opt.width}
local OTHER = {mnist = 'fashion-mnist', ['fashion-mnist'] = 'mnist'}
-- the sources of a target: its own data set, and with --transfer the other one
local function sources_of(t) return opt.transfer and {t, OTHER[t]} or {t} end
local source_names, seen = {}, {}
for _, t in ipairs(targets) do
  for _, s in ipairs(sources_of(t)) do
    if not seen[s] then seen[s] = true; source_names[#source_names + 1] = s end
  end
end
local sources, source_info = {}, {}
local need_source = #control_of > 0 and #controls > 0
for _, r in ipairs(rules) do need_source = need_source or init.covariances[r] ~= nil end
for _, s in ipairs(need_source and source_names or {}) do
  local dir = string.format('%s/sources/%s', opt.out, s)
  local path, info_path = dir .. '/model.safetensors', dir .. '/source.json'
  local d = dataset(s)
  local model, info
  if util.exists(info_path) then
    info = json.decode(util.read_file(info_path))
    for k, v in pairs(recipe) do
      if info[k] ~= v then
        error(string.format('%s: the cached source was trained with %s = %s, this study asks for %s; '
          .. 'use another --out or delete %s', info_path, k, tostring(info[k]), tostring(v), dir), 0)
      end
    end
    model = models.load(path)
    log('source %s: %s (test %.2f%%)', s, path, 100 * info.test_acc)
  else
    local steps = opt.source_epochs * ((NS + opt.batch - 1) // opt.batch)
    log('source %s: training VGG11 (width %g, %s init, %s lr %g) on %s, %d epochs: about %s', s,
      opt.width, recipe.init, recipe.optimizer, recipe.lr, design.source, opt.source_epochs,
      util.duration(steps * step_s * (recipe.optimizer == 'adam' and 1.1 or 1)))
    if root then util.mkdir(dir) end
    model = vgg(1000, recipe.init)
    local init_model = vgg(1000, recipe.init)
    local r = train.fit(model, d.source, d.test, {epochs = opt.source_epochs,
      optimizer = recipe.optimizer, lr = recipe.lr, batch = opt.batch, seed = 1000, out = dir,
      resume = true, warmup = math.min(100, NS // opt.batch // 4), eval_batch = EVAL_BATCH})
    if root then models.save(model, path) end
    local moved, rho = study.drift(model, init_model)
    info = {dataset = s, test_acc = r.final_test_acc, weight_change = moved,
      corr_init_trained = rho, bar = BAR[s], meets_bar = BAR[s] ~= nil and r.final_test_acc >= BAR[s]}
    for k, v in pairs(recipe) do info[k] = v end
    if root then util.write_file(info_path, json.encode(info, {indent = 2}) .. '\n') end
  end
  if BAR[s] and info.test_acc < BAR[s] then
    log('WARNING: source %s reaches %.2f%%, below the %.1f%% a good source should reach', s,
      100 * info.test_acc, 100 * BAR[s])
  end
  local n = math.min(opt.agop_samples, NS)
  local G = features.agop(model, d.source.images:narrow(1, 1, n), {batch = 50})
  local mats = {nfm = {}, agop = {}}
  for l, conv in ipairs(model.convs) do mats.nfm[l], mats.agop[l] = features.nfm(conv), G[l] end
  sources[s] = mats
  info.agop_from = string.format('%s train[%d:%d]', s, S0, S0 + n - 1)
  source_info[s] = info
end
run:set('sources', source_info)

-- 3. the runs: one spec per (target, rule, source, lr, seed)
local cells = {}
for _, t in ipairs(targets) do
  local srcs = sources_of(t)
  for _, r in ipairs(rules) do
    for _, s in ipairs(init.covariances[r] and srcs or {'-'}) do
      cells[#cells + 1] = {target = t, rule = r, label = r, source = s}
    end
  end
  for _, m in ipairs(#controls > 0 and control_of or {}) do
    for _, c in ipairs(controls) do
      for _, s in ipairs(srcs) do
        cells[#cells + 1] = {target = t, rule = c, match = m, label = c .. '(' .. m .. ')', source = s}
      end
    end
  end
end
local function spec(c, lr, seed)
  return {id = string.format('%s|%s|%s|%g|%d', c.target, c.label, c.source, lr, seed),
    target = c.target, rule = c.rule, match = c.match, label = c.label, source = c.source,
    lr = lr, seed = seed}
end

local function run_one(s)
  local d = dataset(s.target)
  local model = vgg(s.seed)
  local ctx = {generator = agop.Generator(s.seed * 7919 + 17), match = s.match,
    batch = d.train.images:narrow(1, 1, math.min(opt.init_batch, T))}
  if s.source ~= '-' then ctx.source = sources[s.source] end
  init.apply(model, s.rule, ctx)
  local diag, logit_rms = study.signal(model, d.val.images:narrow(1, 1, math.min(opt.diag_images, V)))
  local nfm0 = {}
  for l, conv in ipairs(model.convs) do nfm0[l] = features.nfm(conv) end
  local res = {target = s.target, rule = s.rule, match = s.match, label = s.label,
    source = s.source, lr = s.lr, seed = s.seed, diag = diag, logit_rms = logit_rms}
  local ok, r = pcall(train.fit, model, d.train, d.test, {epochs = opt.epochs, batch = opt.batch,
    lr = s.lr, warmup = opt.warmup, seed = s.seed, log_every = opt.quick and 4 or 20, quiet = true,
    eval_batch = EVAL_BATCH})
  if not ok then
    if not tostring(r):find('train: loss is') then error(r, 0) end
    -- a rule whose network diverges is a result, not a failure of the study
    res.diverged, res.error = true, tostring(r)
    log('%s: diverged (%s)', s.id, tostring(r):match('loss is %S+ at step %d+') or tostring(r))
    return res
  end
  res.diverged = false
  res.val_acc = train.evaluate(model, d.val, EVAL_BATCH)
  res.test_acc, res.acc_epoch1, res.test_acc_by_epoch = r.final_test_acc, r.test_acc[1], r.test_acc
  res.corr_init_final, res.seconds = {}, r.seconds
  for l, conv in ipairs(model.convs) do res.corr_init_final[l] = features.corr(nfm0[l], features.nfm(conv)) end
  res.curve = {}
  for _, row in ipairs(r.log) do
    if not row.test_acc then res.curve[#res.curve + 1] = {row.step, row.loss} end
  end
  log('%s: held-out %.2f%%, test %.2f%%', s.id, 100 * res.val_acc, 100 * res.test_acc)
  return res
end

-- runs.json belongs to one design: a changed option that changes what a run means is refused
local meta_path = opt.out .. '/runs_design.json'
local meta = {width = opt.width, epochs = opt.epochs, batch = opt.batch, warmup = opt.warmup,
  target = design.target, heldout = design.heldout, source = design.source, test = design.test,
  source_recipe = recipe, agop_samples = opt.agop_samples, diag_images = opt.diag_images}
if not opt.fresh and util.exists(meta_path) and util.exists(opt.out .. '/runs.json') then
  local had = util.read_file(meta_path)
  if had ~= json.encode(meta, {indent = 1}) .. '\n' then
    error(string.format('%s: the finished runs in %s were made with other options (%s); use another '
      .. '--out, or --fresh to start over', meta_path, opt.out, had:gsub('%s+', ' ')), 0)
  end
end
if root then util.write_file(meta_path, json.encode(meta, {indent = 1}) .. '\n') end

local sweep_opts = {path = opt.out .. '/runs.json', fresh = opt.fresh, log = log, estimate = per_run}
-- stage 1: every rate, seeds 1..sweep_seeds
local specs = {}
for _, c in ipairs(cells) do
  for _, lr in ipairs(lrs) do
    for seed = 1, opt.sweep_seeds do specs[#specs + 1] = spec(c, lr, seed) end
  end
end
local remaining = #cells * (opt.seeds - opt.sweep_seeds)
log('%d cells x %d rates x %d seeds, then %d runs at the chosen rates', #cells, #lrs, opt.sweep_seeds, remaining)
local done = study.sweep(specs, run_one, sweep_opts)
-- stage 2: the other seeds at each cell's chosen rate
sweep_opts.fresh = false
local chosen = study.summarize(specs, done, {select_seeds = opt.sweep_seeds})
local more = {}
for _, c in ipairs(cells) do
  for _, x in ipairs(chosen) do
    if x.target == c.target and x.label == c.label and x.source == c.source and x.best_lr then
      for seed = opt.sweep_seeds + 1, opt.seeds do more[#more + 1] = spec(c, x.best_lr, seed) end
    end
  end
end
done = study.sweep(more, run_one, sweep_opts)
for _, s in ipairs(more) do specs[#specs + 1] = s end
if not root then return end -- what follows writes the report

-- 4. the report
local summary = study.summarize(specs, done, {select_seeds = opt.sweep_seeds})
local note = string.format('VGG11 width %g, SGD (momentum 0.9, cosine, warm-up %d) for %d epochs, batch %d; '
  .. 'targets train on %s, choose their rate among %s on the held-out %s, test on %s. Sources: VGG11 '
  .. '(%s, %s init, lr %g, %d epochs) on %s, disjoint from the targets\' images. Test accuracy: mean ± '
  .. 'sample std over the runs that did not diverge; Δ: paired differences with kaiming_normal (same seeds), '
  .. 'mean and 95 %% t interval, over the seeds where neither diverged (n pairs). A diverged run (a NaN '
  .. 'or infinite loss) counts as 0 when choosing a rate.', opt.width, opt.warmup, opt.epochs, opt.batch,
  design.target, opt.lrs, design.heldout, design.test, recipe.optimizer, recipe.init, recipe.lr,
  recipe.epochs, design.source)
local t = study.table(summary, note)
run:write('table.md', t.markdown)
run:write('table.csv', t.csv)
run:write('lr_sweep.csv', study.lr_table(summary))
print(t.markdown)

-- signal propagation at init: the same at every rate (the init does not depend on it), so
-- each (cell, seed) is written once, from its first finished run
local diag, written = {'target,rule,source,seed,layer,act_rms,zero_frac,dead_frac,logit_rms'}, {}
for _, s in ipairs(specs) do
  local r, key = done[s.id], string.format('%s|%s|%s|%d', s.target, s.label, s.source, s.seed)
  if r and r.diag and not written[key] then
    written[key] = true
    for l, x in ipairs(r.diag) do
      diag[#diag + 1] = string.format('%s,%s,%s,%d,%d,%.6g,%.6g,%.6g,%.6g', s.target, s.label,
        s.source, s.seed, l, x.act_rms, x.zero_frac, x.dead_frac, r.logit_rms)
    end
  end
end
run:write('diagnostics.csv', table.concat(diag, '\n') .. '\n')

local groups, order = {}, {}
for _, c in ipairs(summary) do
  local k = c.target .. '|' .. c.label .. '|' .. c.source
  groups[k], order[#order + 1] = {target = c.target, rule = c.label, source = c.source, runs = c.runs}, k
end
report.figure_init_curves(run:path('learning_curves.png'), groups, order, targets)
run:set('cells', #summary)
run:set('runs', #specs)
run:set('measured', {step_seconds = step_s, eval_seconds_per_image = eval_s, run_seconds_estimate = per_run})
run:finish({cells = #summary, runs = #specs})
log('wrote %s', opt.out)
