-- nn containers and training: Sequential (gradients, errors, drawing, modes, the
-- first layer's input-gradient switch, clones), flat parameter buffers, user-defined
-- modules, a small training run. The layers themselves: test_nn.lua.
local lu = require('luaunit')
local agop = require('agop')
local nn = require('agop.nn')
local optim = require('agop.optim')
local gc = require('gradcheck')

local function gen(seed) return agop.Generator(seed) end

TestSequential = {}

local function small_net(g)
  return nn.Sequential()
    :add(nn.Conv2d(1, 3, 3, {padding = 1, generator = g}))
    :add(nn.ReLU())
    :add(nn.MaxPool2d(2))
    :add(nn.Conv2d(3, 4, 3, {stride = 2, padding = 1, generator = g}))
    :add(nn.BatchNorm2d(4))
    :add(nn.ReLU())
    :add(nn.Flatten())
    :add(nn.Linear(4 * 2 * 2, 3, {generator = g}))
end

function TestSequential:test_grad_matches_finite_differences()
  local g = gen(60)
  local net = small_net(g)
  local x = agop.randn(g, 2, 1, 7, 7)
  local r = gc.check_module(net, x, {gen = g, h = 1e-3})
  gc.assert_ok(lu, r, 5e-3, 'sequential')
  lu.assertEquals(#r.params, 8)
  -- each child keeps its output
  lu.assertEquals(net.modules[3].output:size(), {2, 3, 3, 3})
  lu.assertTrue(net.modules[8].output == net.output)
end

function TestSequential:test_errors_name_the_failing_module()
  local net = nn.Sequential():add(nn.Conv2d(1, 2, 3)):add(nn.ReLU()):add(nn.Conv2d(3, 2, 1))
  lu.assertErrorMsgContains('Sequential[3] (nn.Conv2d): nn.Conv2d: conv2d_shape: input has '
                            .. '2 channels, weight expects 3', net.forward, net,
                            agop.zeros(1, 1, 5, 5))
  local outer = nn.Sequential():add(nn.Identity()):add(net)
  lu.assertErrorMsgContains('Sequential[2] (nn.Sequential): Sequential[3] (nn.Conv2d)',
                            outer.forward, outer, agop.zeros(1, 1, 5, 5))
  local ok = nn.Sequential():add(nn.Linear(2, 2))
  lu.assertErrorMsgContains('backward called before forward', ok.backward, ok,
                            agop.zeros(1, 2), agop.zeros(1, 2))
  ok:forward(agop.zeros(1, 2))
  lu.assertErrorMsgContains('Sequential[1] (nn.Linear): nn.Linear: gradOutput is 1x3',
                            ok.backward, ok, agop.zeros(1, 2), agop.zeros(1, 3))
  lu.assertErrorMsgContains('expected an nn module', ok.add, ok, 42)
end

function TestSequential:test_tostring_draws_the_network()
  local net = nn.Sequential():add(nn.Conv2d(1, 64, 3, {padding = 1})):add(nn.ReLU())
    :add(nn.Sequential():add(nn.Flatten()))
  lu.assertEquals(tostring(net), table.concat({
    'nn.Sequential {',
    '  [input -> (1) -> (2) -> (3) -> output]',
    '  (1): nn.Conv2d(1 -> 64, 3x3, stride 1, pad 1)',
    '  (2): nn.ReLU',
    '  (3): nn.Sequential {',
    '    [input -> (1) -> output]',
    '    (1): nn.Flatten',
    '  }',
    '}'}, '\n'))
end

function TestSequential:test_train_evaluate_propagate()
  local net = small_net(gen(61))
  net:evaluate()
  for _, m in ipairs(net.modules) do lu.assertFalse(m.training) end
  net:train()
  for _, m in ipairs(net.modules) do lu.assertTrue(m.training) end
end

function TestSequential:test_parameters_and_state_dict()
  local net = small_net(gen(62))
  local params, grads = net:parameters()
  lu.assertEquals(#params, 8)
  lu.assertEquals(#grads, 8)
  lu.assertTrue(params[1] == net.modules[1].weight)
  lu.assertTrue(grads[8] == net.modules[8].gradBias)
  local names = {}
  for _, e in ipairs(net:state_dict()) do names[#names + 1] = e.name end
  lu.assertEquals(names, {'0.weight', '0.bias', '3.weight', '3.bias', '4.weight', '4.bias',
                          '4.running_mean', '4.running_var', '7.weight', '7.bias'})
  lu.assertEquals(net:num_parameters(), 3 * 9 + 3 + 4 * 27 + 4 + 4 + 4 + 16 * 3 + 3)
end

function TestSequential:test_first_layer_can_skip_its_input_gradient()
  local g = gen(64)
  local net = small_net(g)
  local x = agop.randn(g, 2, 1, 7, 7)
  local gy = agop.randn(g, 2, 3)
  net:forward(x)
  net:backward(x, gy)
  local gw = net.modules[1].gradWeight:clone()
  lu.assertNotNil(net.gradInput)
  net:zeroGrad()
  net.modules[1].need_gradInput = false
  net:forward(x)
  lu.assertNil(net:backward(x, gy))
  lu.assertTrue(net.modules[1].gradWeight:equal(gw))
  net:clearState()
  lu.assertNil(net.modules[3].output)
  lu.assertNil(net.modules[3].indices)
end

function TestSequential:test_clone_is_independent()
  local net = small_net(gen(63))
  local c = net:clone()
  lu.assertTrue(c.modules[1].weight:equal(net.modules[1].weight))
  c.modules[1].weight:fill(0)
  lu.assertTrue(net.modules[1].weight:norm() > 0)
  lu.assertEquals(nn.typename(c.modules[1]), 'nn.Conv2d')
end

---------------------------------------------------------------------------------------
TestFlatParameters = {}

function TestFlatParameters:test_views_share_one_buffer_and_second_call_keeps_references()
  local g = gen(70)
  local net = small_net(g)
  local before = {}
  for i, p in ipairs(net:parameters()) do before[i] = p:clone() end
  local params, grads = net:flatten_parameters()
  lu.assertEquals(params:numel(), net:num_parameters())
  lu.assertEquals(grads:numel(), params:numel())
  -- values were copied over, in parameters() order
  local off = 0
  local ps, gs = net:parameters()
  for i, p in ipairs(ps) do
    lu.assertTrue(p:equal(before[i]), 'value of parameter ' .. i)
    lu.assertTrue(params:narrow(1, off + 1, p:numel()):equal(p:reshape(p:numel())))
    off = off + p:numel()
  end
  -- writes through the flat buffer are seen by the modules, and backward fills grads
  local w = net.modules[1].weight
  params:narrow(1, 1, 1):fill(3)
  lu.assertEquals(w:get(1, 1, 1, 1), 3)
  local x = agop.randn(g, 2, 1, 7, 7)
  net:forward(x)
  net:backward(x, agop.randn(g, 2, 3))
  lu.assertTrue(grads:norm() > 0)
  lu.assertEquals(grads:narrow(1, 1, gs[1]:numel()):norm(), gs[1]:norm())
  -- a second call returns the same buffers and does not re-flatten
  local p2, g2 = net:flatten_parameters()
  lu.assertTrue(p2 == params and g2 == grads)
  lu.assertTrue(net.modules[1].weight == w)
  params:narrow(1, 1, 1):fill(5)
  lu.assertEquals(net.modules[1].weight:get(1, 1, 1, 1), 5)
  -- zeroGrad clears the flat gradient
  net:zeroGrad()
  lu.assertEquals(grads:norm(), 0)
  -- a submodule of a flattened model cannot be flattened on its own
  lu.assertErrorMsgContains('already flattened', net.modules[1].flatten_parameters,
                            net.modules[1])
end

function TestFlatParameters:test_optimizer_step_updates_the_modules()
  local g = gen(71)
  local net = nn.Sequential():add(nn.Linear(3, 2, {generator = g}))
  local params, grads = net:flatten_parameters()
  local w0 = net.modules[1].weight:clone()
  grads:fill(1)
  optim.SGD{lr = 0.5}:step(params, grads)
  lu.assertTrue(agop.allclose(net.modules[1].weight, w0 - 0.5, 1e-6, 1e-6))
end

function TestFlatParameters:test_load_state_dict_keeps_flat_views()
  local g = gen(72)
  local a, b = small_net(g), small_net(g)
  local params = b:flatten_parameters()
  b:load_state_dict(a:state_dict())
  lu.assertTrue(b.modules[1].weight:equal(a.modules[1].weight))
  lu.assertTrue(params:narrow(1, 1, 27):equal(a.modules[1].weight:reshape(27)))
  local sd = a:state_dict()
  sd[1].tensor = agop.zeros(3, 1, 5, 5)
  lu.assertErrorMsgContains("'0.weight' is 3x1x5x5 in the file but 3x1x3x3 in the model",
                            b.load_state_dict, b, sd)
  table.remove(sd, 1)
  lu.assertErrorMsgContains("missing '0.weight'", b.load_state_dict, b, sd)
end

---------------------------------------------------------------------------------------
TestClasses = {}

function TestClasses:test_user_defined_module()
  local Scale = nn.class('my.Scale', nn.Module)
  function Scale:__init(s)
    nn.Module.__init(self)
    self.s = s
  end
  function Scale:updateOutput(x) self.output = x * self.s; return self.output end
  function Scale:updateGradInput(_, gy) self.gradInput = gy * self.s; return self.gradInput end
  local m = Scale(3)
  lu.assertEquals(nn.typename(m), 'my.Scale')
  lu.assertEquals(tostring(m), 'my.Scale')
  lu.assertTrue(nn.is_a(m, nn.Module))
  lu.assertNil(nn['my.Scale'])
  local net = nn.Sequential():add(m):add(nn.Linear(2, 1))
  local y = net:forward(agop.tensor{{1, 2}})
  lu.assertEquals(y:size(), {1, 1})
  gc.assert_ok(lu, gc.check_module(net, agop.tensor{{1, 2}}), 1e-3, 'user module')
end

---------------------------------------------------------------------------------------
TestTraining = {}

function TestTraining:setUp()
  -- tensors this small only pay for threads (and a busy machine makes that milliseconds)
  self.threads = agop.get_threads()
  agop.set_threads(1)
end

function TestTraining:tearDown() agop.set_threads(self.threads) end

-- Which quadrant of an 8x8 image is brighter (noise 0.8, bump 0.6)? A small CNN trained
-- with SGD for 300 steps must cut its training loss 10x and classify held-out images.
local function quadrant_data(g, n)
  local x = agop.randn(g, n, 1, 8, 8) * 0.8
  local labels = agop.zeros(n)
  for i = 1, n do
    local q = (i - 1) % 4
    labels:set(i, q)
    local r, c = (q // 2) * 4 + 1, (q % 2) * 4 + 1
    x:select(1, i):narrow(2, r, 4):narrow(3, c, 4):add_(0.6)
  end
  return x, labels
end

function TestTraining:test_small_cnn_learns_quadrants()
  local g = gen(80)
  local n = 128
  local x, labels = quadrant_data(g, n)
  local net = nn.Sequential()
    :add(nn.Conv2d(1, 8, 3, {padding = 1, generator = g})):add(nn.ReLU())
    :add(nn.MaxPool2d(2))
    :add(nn.Conv2d(8, 8, 3, {padding = 1, generator = g})):add(nn.ReLU())
    :add(nn.Flatten()):add(nn.Linear(8 * 4 * 4, 4, {generator = g}))
  local crit = nn.CrossEntropyLoss()
  local params, grads = net:flatten_parameters()
  local opt = optim.SGD{lr = 0.02, momentum = 0.9}
  local initial = crit:forward(net:forward(x), labels)
  local batch = 32
  for step = 0, 299 do
    local i = (step * batch) % n + 1
    local xb, yb = x:narrow(1, i, batch), labels:narrow(1, i, batch)
    net:zeroGrad()
    local out = net:forward(xb)
    crit:forward(out, yb)
    net:backward(xb, crit:backward(out, yb))
    opt:step(params, grads)
  end
  local final = crit:forward(net:forward(x), labels)
  lu.assertTrue(final < initial / 10,
                string.format('loss went from %.4f to %.4f (needs a 10x cut)', initial, final))
  local xt, lt = quadrant_data(g, 200)
  local pred = net:forward(xt):argmax(2)
  local right = 0
  for i = 1, 200 do
    if pred:get(i) - 1 == lt:get(i) then right = right + 1 end
  end
  lu.assertTrue(right >= 150, string.format('held-out accuracy %d/200 (needs 150)', right))
end
