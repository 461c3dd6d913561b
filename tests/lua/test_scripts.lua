-- The experiment scripts end to end on real MNIST, in their --quick forms: every
-- artifact of DESIGN.md §4 is written and says what it should.
local lu = require('luaunit')
local agop = require('agop')
local util = require('agop.util')
local json = require('agop.json')

local helpers = require('helpers')
local exe, tmpdir, run = helpers.exe, helpers.make_dir, helpers.run

local function csv_rows(path)
  local rows, header = {}, nil
  for line in io.lines(path) do
    local cells = {}
    for c in (line .. ','):gmatch('([^,]*),') do cells[#cells + 1] = c end
    if not header then header = cells
    else
      local r = {}
      for i, k in ipairs(header) do r[k] = cells[i] end
      rows[#rows + 1] = r
    end
  end
  return rows
end

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

TestScripts = {}

function TestScripts:test_vgg11_mnist_quick_writes_every_artifact()
  local d = tmpdir()
  local out, ok = run(string.format("'%s' scripts/vgg11_mnist.lua --quick --out %s", exe(), d))
  lu.assertTrue(ok, out)
  for _, f in ipairs{'run.json', 'train_log.csv', 'table1.md', 'table1.csv', 'model.safetensors',
      'model_init.safetensors', 'fig1_layer1_nfm_vs_agop.png', 'fig_all_layers_nfm_vs_agop.png',
      'fig_feature_maps.png'} do
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
  check_expand(d) -- on this run: --expand rebuilds deleted matrices
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
