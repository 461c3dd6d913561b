-- The training loop on real MNIST: checkpoints, exact resume after a kill, NaN guard,
-- the log, and the width-0.25 VGG11 accuracy bar.
local lu = require('luaunit')
local agop = require('agop')
local util = require('agop.util')

local helpers = require('helpers')
local exe, tmpdir, sh = helpers.exe, helpers.make_dir, helpers.run

TestTrain = {}

function TestTrain:test_killed_run_resumes_to_the_same_weights()
  local e, d = exe(), tmpdir()
  local full, killed = d .. '/full', d .. '/killed'
  local o1, ok1 = sh(string.format("'%s' tests/lua/train_child.lua %s", e, full))
  lu.assertTrue(ok1, o1)
  lu.assertStrContains(o1, 'done steps=24')
  -- killed at step 13: epoch 2, batch 5 (8 batches an epoch); only epoch 1's checkpoint exists
  local o2, ok2 = sh(string.format("'%s' tests/lua/train_child.lua %s 13", e, killed))
  lu.assertNotEquals(ok2, true, 'the child should have been killed: ' .. o2)
  lu.assertTrue(util.exists(killed .. '/checkpoint.safetensors'))
  lu.assertFalse(util.exists(killed .. '/final.npy'))
  local o3, ok3 = sh(string.format("'%s' tests/lua/train_child.lua %s 0 resume", e, killed))
  lu.assertTrue(ok3, o3)
  lu.assertStrContains(o3, 'resumed=2')
  local a, b = agop.load(full .. '/final.npy'), agop.load(killed .. '/final.npy')
  lu.assertTrue(a:equal(b), 'resumed weights differ: max |diff| = ' .. (a - b):abs():max())
  -- the log of the resumed run is the uninterrupted run's, row for row
  lu.assertEquals(util.read_file(killed .. '/train_log.csv'):gsub(',[%d.e+-]*,[%d.e+-]*\n', '\n'),
    util.read_file(full .. '/train_log.csv'):gsub(',[%d.e+-]*,[%d.e+-]*\n', '\n'))
  os.execute("rm -rf '" .. d .. "'")
end

function TestTrain:test_interrupt_writes_a_mid_epoch_checkpoint_that_resumes_exactly()
  local nn, data, train = require('agop.nn'), require('agop.data'), require('agop.train')
  local function net()
    local g = agop.Generator(5)
    return nn.Sequential():add(nn.Conv2d(1, 4, 3, {stride = 2, generator = g})):add(nn.ReLU())
      :add(nn.Flatten()):add(nn.Linear(4 * 15 * 15, 10, {generator = g}))
  end
  local tr = data.load('mnist', 'train', {limit = 300})
  local d = tmpdir()
  local a = net()
  train.fit(a, tr, nil, {epochs = 2, batch = 50, lr = 0.05, out = d .. '/a', quiet = true})
  local b = net()
  local ok, err = pcall(train.fit, b, tr, nil, {epochs = 2, batch = 50, lr = 0.05, out = d .. '/b',
    quiet = true, on_step = function(step) if step == 9 then error('interrupted!', 0) end end})
  lu.assertFalse(ok)
  lu.assertStrContains(err, 'interrupted')
  local c = net()
  local r = train.fit(c, tr, nil, {epochs = 2, batch = 50, lr = 0.05, out = d .. '/b', quiet = true, resume = true})
  lu.assertEquals(r.resumed_from, 2)
  lu.assertEquals(r.steps, 12)
  lu.assertTrue(a:flatten_parameters():equal(c:flatten_parameters()))
  os.execute("rm -rf '" .. d .. "'")
end

function TestTrain:test_nan_loss_stops_with_the_step_and_checkpoint()
  local nn, data, train = require('agop.nn'), require('agop.data'), require('agop.train')
  local g = agop.Generator(1)
  local m = nn.Sequential():add(nn.Flatten()):add(nn.Linear(32 * 32, 10, {generator = g}))
  local tr = data.load('mnist', 'train', {limit = 256})
  local ok, err = pcall(train.fit, m, tr, nil, {epochs = 1, batch = 64, lr = 1e30, quiet = true,
    schedule = 'constant', momentum = 0})
  lu.assertFalse(ok)
  lu.assertStrMatches(err, '.*loss is .* at step %d+ %(epoch 1, batch %d+%); last good checkpoint: none written yet.*')
end

function TestTrain:test_unknown_option_is_an_error()
  local train = require('agop.train')
  local ok, err = pcall(train.fit, {}, {}, nil, {lr_rate = 1})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "unknown option 'lr_rate'")
end

function TestTrain:test_vgg11_quarter_width_learns_mnist()
  -- DESIGN §5: a small real-MNIST run of a narrow VGG11 reaches a stated accuracy
  local models, data, train = require('agop.models'), require('agop.data'), require('agop.train')
  local m = models.vgg11{width = 0.25, generator = agop.Generator(1)}
  local tr = data.load('mnist', 'train', {limit = 5000})
  local te = data.load('mnist', 'test', {limit = 2000})
  local r = train.fit(m, tr, te, {epochs = 2, batch = 32, lr = 0.02, warmup = 20, quiet = true})
  print(string.format('    VGG11 width 0.25, 5000 images, 2 epochs: test accuracy %.2f%%', 100 * r.final_test_acc))
  lu.assertTrue(r.final_test_acc >= 0.90, 'test accuracy ' .. r.final_test_acc)
end

function TestTrain:test_same_seed_and_thread_count_give_identical_weights()
  -- README: a run is reproducible bit for bit with the same seed and thread count.
  -- Two processes per thread count; weights and AGOP factors compared for equality.
  local e, d = exe(), tmpdir()
  for _, threads in ipairs{1, 2} do
    local dirs = {}
    for k = 1, 2 do
      dirs[k] = string.format('%s/t%d_%d', d, threads, k)
      os.execute("mkdir -p '" .. dirs[k] .. "'")
      local o, ok = sh(string.format("AGOP_THREADS=%d '%s' tests/lua/repro_child.lua %s",
        threads, e, dirs[k]))
      lu.assertTrue(ok, o)
      lu.assertStrContains(o, 'threads=' .. threads)
    end
    local a, b = agop.load(dirs[1] .. '/params.npy'), agop.load(dirs[2] .. '/params.npy')
    lu.assertTrue(a:equal(b), string.format('%d threads: weights differ by up to %g', threads,
      (a - b):abs():max()))
    for l = 1, 8 do
      local f = string.format('/agop_s%d.npy', l)
      lu.assertTrue(agop.load(dirs[1] .. f):equal(agop.load(dirs[2] .. f)),
        string.format('%d threads: AGOP factor of layer %d differs', threads, l))
    end
  end
  os.execute("rm -rf '" .. d .. "'")
end
