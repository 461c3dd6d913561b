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
  -- a real Ctrl-C: SIGINT to this process (popen, unlike os.execute, leaves SIGINT alone),
  -- which the host turns into an error at the next Lua instruction
  local function ctrl_c()
    local f = assert(io.open('/proc/self/stat'))
    local pid = f:read('n')
    f:close()
    io.popen('kill -INT ' .. pid):close()
  end
  local ok, err = pcall(train.fit, b, tr, nil, {epochs = 2, batch = 50, lr = 0.05, out = d .. '/b',
    quiet = true, on_step = function(step) if step == 9 then ctrl_c() end end})
  lu.assertFalse(ok)
  lu.assertStrContains(err, 'interrupted')
  -- the checkpoint is the interrupted step's, mid-epoch (not the end of epoch 1)
  local _, meta = agop.load(d .. '/b/checkpoint.safetensors')
  lu.assertEquals({meta.epoch, meta.batch, meta.step}, {'2', '3', '9'})
  local c = net()
  local r = train.fit(c, tr, nil, {epochs = 2, batch = 50, lr = 0.05, out = d .. '/b', quiet = true, resume = true})
  lu.assertEquals(r.resumed_from, 2)
  lu.assertEquals(r.steps, 12)
  lu.assertTrue(a:flatten_parameters():equal(c:flatten_parameters()))
  os.execute("rm -rf '" .. d .. "'")
end

-- Ctrl-C is told by the host's count of interrupts, not by an error's text: an error
-- that only says 'interrupted' writes no mid-epoch checkpoint
function TestTrain:test_an_error_saying_interrupted_is_not_a_ctrl_c()
  local nn, data, train = require('agop.nn'), require('agop.data'), require('agop.train')
  local g = agop.Generator(5)
  local net = nn.Sequential():add(nn.Flatten()):add(nn.Linear(32 * 32, 10, {generator = g}))
  local tr = data.load('mnist', 'train', {limit = 120})
  local d = tmpdir()
  local n0 = agop.interrupts()
  local ok, err = pcall(train.fit, net, tr, nil, {epochs = 2, batch = 40, lr = 0.05,
    out = d, quiet = true,
    on_step = function(step) if step == 5 then error('interrupted!', 0) end end})
  lu.assertFalse(ok)
  lu.assertEquals(err, 'interrupted!')
  lu.assertEquals(agop.interrupts(), n0)
  local _, meta = agop.load(d .. '/checkpoint.safetensors')
  lu.assertEquals({meta.epoch, meta.batch, meta.step}, {'2', '0', '3'}) -- epoch 1's end
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

function TestTrain:test_first_layer_skips_its_input_gradient_while_training()
  local nn, data, train = require('agop.nn'), require('agop.data'), require('agop.train')
  local g = agop.Generator(2)
  local conv = nn.Conv2d(1, 4, 3, {padding = 1, generator = g})
  local m = nn.Sequential():add(nn.Sequential():add(conv):add(nn.ReLU())):add(nn.Flatten())
    :add(nn.Linear(4 * 32 * 32, 10, {generator = g}))
  local seen, calls = {}, 0
  conv.backward = function(self, x, gy)
    calls = calls + 1
    seen[#seen + 1] = self.need_gradInput
    return nn.Conv2d.backward(self, x, gy)
  end
  local tr = data.load('mnist', 'train', {limit = 128})
  train.fit(m, tr, nil, {epochs = 1, batch = 64, lr = 0.01, quiet = true})
  lu.assertEquals(calls, 2)
  lu.assertEquals(seen, {false, false})
  lu.assertNil(conv.gradInput) -- never computed
  lu.assertTrue(conv.gradWeight:norm() > 0, 'the weight gradient is still computed')
  lu.assertTrue(conv.need_gradInput, 'the switch is put back after training')
  -- put back when training fails too
  lu.assertFalse(pcall(train.fit, m, tr, nil, {epochs = 1, batch = 64, lr = 1e30, quiet = true,
    schedule = 'constant', momentum = 0}))
  lu.assertTrue(conv.need_gradInput)
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

-- Every field of a checkpoint is checked before any is applied: a bad one is an error
-- naming it, and the model, the default generator and the output folder stay exactly
-- as they were (byte for byte).
function TestTrain:test_a_bad_checkpoint_changes_nothing()
  local nn, train, files = require('agop.nn'), require('agop.train'), require('agop.files')
  local function net()
    return nn.Sequential():add(nn.Flatten()):add(nn.Linear(64, 10, {generator = agop.Generator(2)}))
  end
  local g = agop.Generator(4)
  local set = {images = agop.rand(g, 60, 1, 8, 8), labels = agop.from_table(
    (function() local t = {} for i = 1, 60 do t[i] = i % 10 end return t end)())}
  local d = tmpdir()
  local opts = {epochs = 1, batch = 20, lr = 0.05, out = d, quiet = true}
  train.fit(net(), set, nil, opts)
  local ckpt = d .. '/checkpoint.safetensors'
  local good_t, good_meta, names = files.load_safetensors(ckpt)
  lu.assertNotNil(good_t['opt.momentum'])
  local function folder()
    local files = {}
    local p = io.popen("ls -A '" .. d .. "'")
    for f in p:lines() do files[f] = util.read_file(d .. '/' .. f) end
    p:close()
    return files
  end
  local zero_state = string.rep('00', 32) .. string.rep('01', 8)
  local cases = {
    {{epoch = '1e999'}, 'epoch is "1e999", not an integer in [1, 3]'},
    {{epoch = '0'}, 'epoch is "0"'}, {{epoch = '-1'}, 'epoch is "-1"'},
    {{epoch = '1.5'}, 'epoch is "1.5"'}, {{batch = '7'}, 'batch is "7"'},
    {{step = '4'}, 'step 4 is not epoch 2, batch 0 of 3 batches an epoch'},
    {{images = '1e9'}, 'images is "1e9"'}, {{seconds = 'nan'}, 'seconds is "nan"'},
    {{optimizer = '{"kind":"SGD","step":3,"buffers":[]}'}, 'the momentum buffer is missing',
      {['opt.momentum'] = false}},
    {{}, 'buffer momentum has 5 elements, the parameters 650', {['opt.momentum'] = agop.zeros(5)}},
    {{}, 'buffer momentum holds NaN or Inf', {['opt.momentum'] = agop.full(0 / 0, 650)}},
    {{optimizer = '{"kind":"SGD","step":2,"buffers":["momentum"]}'},
      'the optimizer took 2 steps, the run 3'},
    {{optimizer = '{"kind":"Adam","step":3,"buffers":["momentum"]}'}, 'state is for Adam, not SGD'},
    {{optimizer = 'not json'}, 'optimizer is not a JSON object'},
    {{rng_default = zero_state}, 'rng_default: Generator:set_state: the state is all zeros'},
    {{rng_shuffle = 'zz'}, 'rng_shuffle is not 80 hex digits'},
    {{test_acc = '[0.5, 0.6]'}, 'test_acc has 2 entries for 1 finished epochs'},
    {{log = '{"a": 1}'}, 'log is not a JSON array'},
    {{format = 'other'}, 'not an agoplua checkpoint'},
    {{}, 'it holds 7 parameters, the model has 650', {params = agop.zeros(7)}},
    {{}, 'the parameters hold NaN or Inf', {params = agop.full(1 / 0, 650)}},
    {{}, 'unexpected tensor "extra"', {extra = agop.zeros(1)}},
  }
  for i, c in ipairs(cases) do
    local meta, list = {}, {}
    for k, v in pairs(good_meta) do meta[k] = v end
    for k, v in pairs(c[1]) do meta[k] = v end
    local repl = c[3] or {}
    for _, name in ipairs(names) do
      local t = repl[name]
      if t == nil then t = good_t[name] end
      if t then list[#list + 1] = {name = name, tensor = t} end
    end
    for name, t in pairs(repl) do
      if t and not good_t[name] then list[#list + 1] = {name = name, tensor = t} end
    end
    files.save_safetensors(ckpt, list, meta)
    local before_files, m = folder(), net()
    local before_params = m:flatten_parameters():clone()
    local before_rng = agop.default_generator():get_state()
    local ok, err = pcall(train.fit, m, set, nil,
      {epochs = 2, batch = 20, lr = 0.05, out = d, quiet = true, resume = true})
    lu.assertFalse(ok, 'case ' .. i .. ' resumed')
    lu.assertStrContains(err, 'train: cannot resume from ' .. ckpt .. ': ')
    lu.assertStrContains(err, c[2])
    lu.assertTrue(m:flatten_parameters():equal(before_params), 'case ' .. i .. ': model changed')
    lu.assertEquals(agop.default_generator():get_state(), before_rng, 'case ' .. i)
    lu.assertEquals(folder(), before_files, 'case ' .. i .. ': the folder changed')
  end
  -- the good checkpoint resumes
  files.save_safetensors(ckpt, (function()
    local l = {} for _, n in ipairs(names) do l[#l + 1] = {name = n, tensor = good_t[n]} end return l
  end)(), good_meta)
  local r = train.fit(net(), set, nil, {epochs = 2, batch = 20, lr = 0.05, out = d, quiet = true,
    resume = true})
  lu.assertEquals(r.resumed_from, 2)
  lu.assertEquals(r.steps, 6)
  os.execute("rm -rf '" .. d .. "'")
end
