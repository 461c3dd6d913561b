-- The experiment scripts end to end on real MNIST, in their --quick forms: every
-- artifact the README lists for them is written and says what it should.
local lu = require('luaunit')
local agop = require('agop')
local util = require('agop.util')
local json = require('agop.json')

local helpers = require('helpers')
local exe, tmpdir, run = helpers.exe, helpers.make_dir, helpers.run

local csv_rows = util.read_csv

-- The largest |a - b| relative to the largest |b|.
local function max_rel_diff(a, b)
  local scale = b:abs():max()
  local diff = (a - b):abs():max()
  return scale > 0 and diff / scale or diff
end

-- On the folder d of a finished vgg11_mnist.lua run: every matrix has an AGOP factor and
-- a run.json record; `--expand` rebuilds deleted matrices from the models and factors
-- (equal to what the run wrote), and refuses clearly when a factor is missing.
local function check_expand(d)
  local info = json.decode(util.read_file(d .. '/run.json'))
  lu.assertEquals(type(info.matrices), 'table', 'run.json has no "matrices"')
  local models = require('agop.models')
  local m = models.load(d .. '/model.safetensors')
  for l, conv in ipairs(m.convs) do
    local co = conv.weight:size(1)
    local sname = string.format('conv%d_agop_s.npy', l)
    lu.assertEquals(agop.load(d .. '/' .. sname):size(), {co, co}, sname)
    for _, kind in ipairs{'nfm_init', 'nfm', 'agop', 'agop_s'} do
      local name = string.format('conv%d_%s.npy', l, kind)
      local rec, M = info.matrices[name], agop.load(d .. '/' .. name)
      lu.assertNotNil(rec, 'no run.json record of ' .. name)
      lu.assertEquals(rec.shape, M:size(), name)
      lu.assertAlmostEquals(rec.fro, M:norm(), 1e-9 * rec.fro, name)
      local tr = 0
      for i = 1, M:size(1) do tr = tr + M:get(i, i) end
      lu.assertAlmostEquals(rec.trace, tr, 1e-9 * math.abs(rec.trace), name)
    end
  end
  -- delete some matrices, rebuild them, compare
  local gone = {'conv1_nfm_init.npy', 'conv2_agop.npy', 'conv5_nfm.npy', 'conv8_agop.npy',
                'conv8_nfm_init.npy'}
  local before = {}
  for _, f in ipairs(gone) do
    before[f] = agop.load(d .. '/' .. f)
    assert(os.remove(d .. '/' .. f))
  end
  local out, ok = run(string.format("'%s' scripts/vgg11_mnist.lua --expand --out %s", exe(), d))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, 'wrote 5 matrices, 19 matrices already there')
  lu.assertStrContains(out, 'conv8_agop.npy')
  for _, f in ipairs(gone) do
    local e = max_rel_diff(agop.load(d .. '/' .. f), before[f])
    -- bit for bit with the run's thread count; 1e-6 leaves room for another BLAS split
    if e > 1e-6 then lu.fail(string.format('%s rebuilt with max relative difference %.3g', f, e)) end
  end
  -- a missing factor: a clear error naming it, nothing written, non-zero exit
  assert(os.remove(d .. '/conv8_agop.npy'))
  assert(os.remove(d .. '/conv8_agop_s.npy'))
  out, ok = run(string.format("'%s' scripts/vgg11_mnist.lua --expand --out %s", exe(), d))
  lu.assertFalse(ok, out)
  lu.assertStrContains(out, d .. '/conv8_agop_s.npy is missing: conv8_agop.npy cannot be rebuilt')
  lu.assertFalse(util.exists(d .. '/conv8_agop.npy'))
  -- a run.json of an older run (no "matrices"): says to rerun the study
  local old = tmpdir()
  util.write_file(old .. '/run.json', '{"seed": 1}\n')
  out, ok = run(string.format("'%s' scripts/vgg11_mnist.lua --expand --out %s", exe(), old))
  lu.assertFalse(ok, out)
  lu.assertStrContains(out, 'has no "matrices" record')
  lu.assertStrContains(out, 'rerun the study')
  os.execute("rm -rf '" .. old .. "'")
  out, ok = run(string.format("'%s' scripts/vgg11_mnist.lua --expand --out %s/none", exe(), old))
  lu.assertFalse(ok, out)
  lu.assertStrContains(out, 'folder ' .. old .. '/none does not exist')
end

-- The columns issue 14 added to Table 1, recomputed from the saved files; rho_vs_n.csv at
-- n = --agop-samples is Table 1's value; the last tracked step is the final network.
local function check_rigorous_table1(d, info, rows, m)
  local stats, features = require('agop.stats'), require('agop.features')
  local N1 = agop.load(d .. '/conv1_nfm.npy')
  -- layer 1: d = 9 < c_out, N is full rank, so the float eigensolver's N^1/2 is a reference
  lu.assertAlmostEquals(tonumber(rows[1].null_rho_nfm_nfm_half), features.corr(N1, N1:matpow(0.5)), 1e-4)
  for l = 1, 8 do
    local r = rows[l]
    local N, N0 = agop.load(string.format('%s/conv%d_nfm.npy', d, l)),
      agop.load(string.format('%s/conv%d_nfm_init.npy', d, l))
    local H = agop.load(string.format('%s/conv%d_agop.npy', d, l)):matpow(0.5)
    lu.assertAlmostEquals(tonumber(r.corr_init_trained_offdiag), stats.corr_offdiag(N0, N), 1e-5)
    lu.assertAlmostEquals(tonumber(r.corr_nfm_sqrt_agop_offdiag), stats.corr_offdiag(N, H), 2e-3)
    local lo, hi, p = tonumber(r.ci_low), tonumber(r.ci_high), tonumber(r.corr_nfm_sqrt_agop)
    lu.assertTrue(lo <= hi and hi - lo < 0.2, string.format('layer %d CI [%s, %s]', l, lo, hi))
    lu.assertTrue(math.abs(0.5 * (lo + hi) - p) < 0.1, 'the CI is far from the estimate')
    local null = tonumber(r.null_rho_nfm_nfm_half)
    lu.assertTrue(null > 0 and null <= 1)
  end
  lu.assertEquals(info.bootstrap.replicates, 20)
  lu.assertEquals(info.bootstrap.blocks, 20)
  -- rho_vs_n: n = 11, 100, 300; at 300 (= --agop-samples) it is Table 1's value
  local rn = csv_rows(d .. '/rho_vs_n.csv')
  lu.assertEquals(#rn, 24)
  for _, x in ipairs(rn) do
    if x.n == '300' then
      lu.assertAlmostEquals(tonumber(x.corr_nfm_sqrt_agop),
        tonumber(rows[tonumber(x.layer)].corr_nfm_sqrt_agop), 2e-6)
    end
  end
  -- dynamics: 3 points, the first the initial network, the last the final one
  local dyn = csv_rows(d .. '/dynamics.csv')
  lu.assertEquals(#dyn, 24)
  lu.assertEquals(info.track.steps, {0, 125, 250})
  for _, x in ipairs(dyn) do
    local l = tonumber(x.layer)
    if x.step == '0' then
      lu.assertEquals(tonumber(x.weight_change), 0)
      lu.assertAlmostEquals(tonumber(x.null_rho_nfm_nfm_half), tonumber(rows[l].null_rho_init), 1e-5)
    elseif x.step == '250' then
      lu.assertAlmostEquals(tonumber(x.weight_change), tonumber(rows[l].weight_change), 1e-5)
      lu.assertAlmostEquals(tonumber(x.corr_init_nfm), tonumber(rows[l].corr_init_trained), 1e-5)
      lu.assertAlmostEquals(tonumber(x.null_rho_nfm_nfm_half), tonumber(rows[l].null_rho_nfm_nfm_half), 1e-5)
    end
  end
  -- run.json: the commit that ran, the thread count, the exact command
  local head = helpers.run('git rev-parse HEAD'):match('%x+')
  lu.assertEquals(info.git.commit, head)
  lu.assertEquals(type(info.git.dirty), 'boolean')
  lu.assertEquals(info.threads, agop.get_threads())
  lu.assertStrContains(info.command, 'agoplua scripts/vgg11_mnist.lua --quick --track 3 --out ')
end

TestScripts = {}

function TestScripts:test_vgg11_mnist_quick_writes_every_artifact()
  local d = tmpdir()
  local out, ok = run(string.format("'%s' scripts/vgg11_mnist.lua --quick --track 3 --out %s", exe(), d))
  lu.assertTrue(ok, out)
  for _, f in ipairs{'run.json', 'train_log.csv', 'table1.md', 'table1.csv', 'model.safetensors',
      'model_init.safetensors', 'fig1_layer1_nfm_vs_agop.png', 'fig_all_layers_nfm_vs_agop.png',
      'fig_feature_maps.png', 'rho_vs_n.csv', 'rho_vs_n.png', 'dynamics.csv',
      'dynamics_conv1.png', 'dynamics_conv8.png'} do
    lu.assertTrue(util.exists(d .. '/' .. f), 'missing ' .. f)
  end
  local models = require('agop.models')
  local m = models.load(d .. '/model.safetensors')
  for l = 1, 8 do
    for _, kind in ipairs{'nfm', 'nfm_init', 'agop'} do
      local M = agop.load(string.format('%s/conv%d_%s.npy', d, l, kind))
      local dd = m.convs[l].weight:numel() // m.convs[l].weight:size(1)
      lu.assertEquals(M:size(), {dd, dd}, string.format('conv%d_%s.npy', l, kind))
    end
  end
  -- the saved CNFM is W^T W of the saved model
  local W = m.convs[3].weight:view(m.convs[3].weight:size(1), -1)
  lu.assertTrue(agop.allclose(agop.load(d .. '/conv3_nfm.npy'), W:t():mm(W), 1e-4, 1e-5))
  local info = json.decode(util.read_file(d .. '/run.json'))
  lu.assertEquals(info.agop.from, 'train[1:300]')
  lu.assertEquals(info.seed, 1)
  lu.assertNotNil(info.versions.openblas_core)
  lu.assertTrue(info.metrics.final_test_acc >= 0.9, 'quick accuracy ' .. info.metrics.final_test_acc)
  local rows = csv_rows(d .. '/table1.csv')
  lu.assertEquals(#rows, 8)
  -- the ansatz on a trained layer 1: CNFM and AGOP^1/2 align
  lu.assertTrue(tonumber(rows[1].corr_nfm_sqrt_agop) > 0.8, rows[1].corr_nfm_sqrt_agop)
  check_rigorous_table1(d, info, rows, m)
  check_expand(d) -- on this run: --expand rebuilds deleted matrices
  os.execute("rm -rf '" .. d .. "'")
end

function TestScripts:test_vgg11_mnist_seeds_give_mean_and_std()
  local d = tmpdir()
  local out, ok = run(string.format("'%s' scripts/vgg11_mnist.lua --quick --seeds 1,2 --width 0.125 " ..
    "--train-limit 400 --test-limit 200 --epochs 1 --warmup 2 --agop-samples 40 --rho-n '' " ..
    "--boot-replicates 4 --boot-blocks 4 --out %s", exe(), d))
  lu.assertTrue(ok, out)
  local s1, s2 = csv_rows(d .. '/seed1/table1.csv'), csv_rows(d .. '/seed2/table1.csv')
  local all = csv_rows(d .. '/table1_seeds.csv')
  lu.assertEquals(#all, 8)
  for l = 1, 8 do
    for _, k in ipairs{'corr_nfm_sqrt_agop', 'null_rho_nfm_nfm_half', 'weight_change'} do
      local a, b = tonumber(s1[l][k]), tonumber(s2[l][k])
      lu.assertAlmostEquals(tonumber(all[l][k .. '_mean']), (a + b) / 2, 1e-6)
      lu.assertAlmostEquals(tonumber(all[l][k .. '_std']), math.abs(a - b) / math.sqrt(2), 1e-6)
    end
    lu.assertEquals(all[l].seeds, '2')
  end
  lu.assertNotEquals(s1[1].corr_nfm_sqrt_agop, s2[1].corr_nfm_sqrt_agop) -- two different runs
  lu.assertStrContains(util.read_file(d .. '/table1_seeds.md'), ' ± ')
  local info = json.decode(util.read_file(d .. '/run.json'))
  lu.assertEquals(info.seeds, {1, 2})
  -- started again: both seeds are finished and are not trained again
  out, ok = run(string.format("'%s' scripts/vgg11_mnist.lua --quick --seeds 1,2 --width 0.125 " ..
    "--train-limit 400 --test-limit 200 --epochs 1 --warmup 2 --agop-samples 40 --rho-n '' " ..
    "--boot-replicates 4 --boot-blocks 4 --out %s", exe(), d))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, 'seed 2: finished in ' .. d .. '/seed2')
  lu.assertNil(out:find('epoch 1/1'), 'a finished seed was trained again')
  os.execute("rm -rf '" .. d .. "'")
end

function TestScripts:test_init_study_quick_runs_a_user_defined_rule()
  local d = tmpdir()
  local rules = d .. '/my_rules.lua'
  util.write_file(rules, [[
local init = require('agop.init')
init.register('half_kaiming', function(w, info, ctx)
  return w:normal_(0, math.sqrt(1 / info.fan_in), ctx.generator)
end, 'Kaiming-normal with half the variance')
]])
  local out, ok = run(string.format("'%s' scripts/init_study.lua --quick --rules-file %s " ..
    "--rules kaiming_normal,half_kaiming,nfm_scaled,kaiming_nfm --out %s/study", exe(), rules, d))
  lu.assertTrue(ok, out)
  local rows = csv_rows(d .. '/study/table.csv')
  local by = {}
  for _, r in ipairs(rows) do by[r.rule] = r end
  lu.assertNotNil(by.half_kaiming, 'no row for the user rule')
  lu.assertNotNil(by.nfm_scaled)
  lu.assertEquals(by.nfm_scaled.source, 'mnist')
  -- the seed's kaiming_nfm rule blows up (N is not normalized): a row, not a crash
  lu.assertNotNil(by.kaiming_nfm)
  lu.assertEquals(tonumber(by.kaiming_nfm.seeds) + tonumber(by.kaiming_nfm.diverged), 1)
  lu.assertTrue(tonumber(by.half_kaiming.acc_final_mean) > 0)
  lu.assertTrue(util.exists(d .. '/study/learning_curves.png'))
  lu.assertTrue(util.exists(d .. '/study/run.json'))
  -- a second start finds every run finished and writes the same table
  local before = util.read_file(d .. '/study/table.csv')
  out, ok = run(string.format("'%s' scripts/init_study.lua --quick --rules-file %s " ..
    "--rules kaiming_normal,half_kaiming,nfm_scaled,kaiming_nfm --out %s/study", exe(), rules, d))
  lu.assertTrue(ok, out)
  lu.assertEquals(util.read_file(d .. '/study/table.csv'), before)
  lu.assertFalse(out:find('epoch%-1 acc') ~= nil, 'finished runs were run again')
  -- the cached source was trained with SGD; asking for another source recipe is refused
  -- before anything runs, and run.json stays the finished study's
  local info = util.read_file(d .. '/study/run.json')
  out, ok = run(string.format("'%s' scripts/init_study.lua --quick --rules-file %s " ..
    "--source-optimizer adam --out %s/study", exe(), rules, d))
  lu.assertNotEquals(ok, true)
  lu.assertStrContains(out, 'the cached source was trained with optimizer = sgd, this study asks for adam')
  lu.assertEquals(util.read_file(d .. '/study/run.json'), info)
  local src = json.decode(util.read_file(d .. '/study/sources/mnist/source.json'))
  lu.assertEquals(src.optimizer, 'sgd')
  lu.assertEquals(#src.weight_change, 8)
  lu.assertTrue(src.corr_init_trained[1] > 0 and src.corr_init_trained[1] <= 1)
  os.execute("rm -rf '" .. d .. "'")
end

function TestScripts:test_init_study_v2_quick_pairs_seeds_sweeps_rates_and_resumes()
  local d = tmpdir()
  local cmd = string.format("'%s' scripts/init_study_v2.lua --quick --out %s/v2", exe(), d)
  local out, ok = run(cmd)
  lu.assertTrue(ok, out)
  lu.assertStrMatches(out, '.*measured: [%d.]+s a training step.*')
  lu.assertStrContains(out, 'estimated time for the 10 runs')
  local rows = csv_rows(d .. '/v2/table.csv')
  local by = {}
  for _, r in ipairs(rows) do by[r.rule] = r end
  for _, rule in ipairs{'kaiming_normal', 'nfm', 'iso_matched(nfm)', 'spectrum_matched(nfm)',
      'subspace_matched(nfm)'} do
    local r = by[rule]
    lu.assertNotNil(r, 'no row for ' .. rule)
    lu.assertEquals(r.runs, '2') -- 2 seeds at the chosen rate
    lu.assertTrue(r.best_lr == '0.01' or r.best_lr == '0.02', r.best_lr)
    if rule ~= 'kaiming_normal' then
      lu.assertEquals(r.source, 'mnist')
      lu.assertEquals(r.diff_n, tostring(2 - tonumber(r.diverged)))
    end
  end
  -- the rate sweep: every rate with seed 1, the chosen one with both seeds
  local sweep = csv_rows(d .. '/v2/lr_sweep.csv')
  lu.assertEquals(#sweep, 10)
  for _, r in ipairs(sweep) do lu.assertEquals(r.runs, r.best == '1' and '2' or '1') end
  -- diagnostics: 5 rules x 2 seeds x 8 layers, fractions in [0, 1]
  local diag = csv_rows(d .. '/v2/diagnostics.csv')
  lu.assertEquals(#diag, 80)
  for _, r in ipairs(diag) do
    lu.assertTrue(tonumber(r.act_rms) > 0)
    lu.assertTrue(tonumber(r.dead_frac) >= 0 and tonumber(r.dead_frac) <= tonumber(r.zero_frac))
  end
  local src = json.decode(util.read_file(d .. '/v2/sources/mnist/source.json'))
  lu.assertEquals(src.images, 'train[1001:2000]')
  lu.assertEquals(#src.corr_init_trained, 8)
  lu.assertEquals(type(src.meets_bar), 'boolean')
  local info = json.decode(util.read_file(d .. '/v2/run.json'))
  lu.assertEquals(info.design.heldout, 'train[601:800]')
  lu.assertNotNil(info.git.commit)
  -- started again: nothing runs twice, same table
  local before = util.read_file(d .. '/v2/table.csv')
  out, ok = run(cmd)
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, '10 runs: 10 finished, 0 to do')
  lu.assertStrContains(out, '5 runs: 5 finished, 0 to do')
  lu.assertEquals(util.read_file(d .. '/v2/table.csv'), before)
  -- another design in the same folder is refused; overlapping sources are a usage error
  out, ok = run(cmd .. ' --epochs 2')
  lu.assertNotEquals(ok, true)
  lu.assertStrContains(out, 'were made with other options')
  out, ok = run(string.format("'%s' scripts/init_study_v2.lua --quick --source-from 700 --out %s/x", exe(), d))
  lu.assertNotEquals(ok, true)
  lu.assertStrContains(out, "overlap the targets' train[1:800]")
  os.execute("rm -rf '" .. d .. "'")
end

function TestScripts:test_cli_choices_and_errors()
  local cli = require('agop.cli')
  local specs = {{'optimizer', 'sgd', 'update rule', {'sgd', 'adam'}}, {'epochs', 1, 'epochs'}}
  local o = cli.parse_args({'--optimizer', 'adam', '--epochs=3'}, specs)
  lu.assertEquals(o.optimizer, 'adam')
  lu.assertEquals(o.epochs, 3)
  lu.assertEquals(cli.parse_args({}, specs).optimizer, 'sgd')
  lu.assertErrorMsgContains('--optimizer expects one of sgd, adam, got "adan"; did you mean adam?',
    cli.parse_args, {'--optimizer', 'adan'}, specs)
  lu.assertErrorMsgContains('--epochs expects an integer, got "1.5"', cli.parse_args,
    {'--epochs', '1.5'}, specs)
  -- info.exit == false: a Lua error, not an exit
  lu.assertErrorMsgContains('unknown option --epoch;', cli.parse, {'--epoch', '2'}, specs,
    {exit = false})
  lu.assertStrContains(cli.help(specs), '(sgd | adam) (default: sgd)')
end

function TestScripts:test_bad_options_are_clear_errors()
  local out, ok = run(string.format("'%s' scripts/vgg11_mnist.lua --epochz 2", exe()))
  lu.assertNotEquals(ok, true)
  lu.assertStrContains(out, 'unknown option --epochz')
  lu.assertStrContains(out, 'did you mean --epochs?')
  lu.assertNil(out:find('traceback'), 'a usage error is one line, not a traceback: ' .. out)
  -- status 2, the usage-error convention
  lu.assertEquals(select(3, os.execute(string.format(
    "'%s' scripts/vgg11_mnist.lua --optimizer adm >/dev/null 2>&1", exe()))), 2)
  out, ok = run(string.format("'%s' scripts/vgg11_mnist.lua --optimizer adm", exe()))
  lu.assertNotEquals(ok, true)
  lu.assertStrContains(out, '--optimizer expects one of sgd, adam, got "adm"; did you mean adam?')
  out, ok = run(string.format("'%s' scripts/init_study.lua --rules kaiming_normall --quick --out /tmp/x-never", exe()))
  lu.assertNotEquals(ok, true)
  lu.assertStrContains(out, "unknown rule 'kaiming_normall'")
  -- a source network of another width cannot seed these filters: said before any training
  out, ok = run(string.format("'%s' scripts/init_study.lua --quick --source results/vgg11_mnist/model.safetensors --out /tmp/x-never", exe()))
  lu.assertNotEquals(ok, true)
  lu.assertStrContains(out, 'has width 1, the study uses --width 0.125')
  out, ok = run(string.format("'%s' scripts/vgg11_mnist.lua --help", exe()))
  lu.assertTrue(ok)
  lu.assertStrContains(out, '--agop-samples')
end
