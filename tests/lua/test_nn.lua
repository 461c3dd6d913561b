-- nn layers: finite-difference gradient checks (in double) for every layer, forward
-- against naive Lua loops, errors. Containers, flat parameters, training: test_nn_containers.lua.
local lu = require('luaunit')
local agop = require('agop')
local nn = require('agop.nn')
local gc = require('gradcheck')

local floor, ceil = math.floor, math.ceil

local function gen(seed) return agop.Generator(seed) end

-- A tensor whose entries are all at least `gap` apart (no ties, no kinks within h).
local function distinct(g, ...)
  local t = agop.zeros(...)
  local n = t:numel()
  local p = g:permutation(n)
  local v = t:view(-1)
  for i = 1, n do v:set(i, (p[i] - n / 2) * 0.05) end
  return t
end

-- Random values with |x| >= 0.1 (away from ReLU's kink).
local function away_from_zero(g, ...)
  local t = agop.randn(g, ...)
  local v = t:view(-1)
  for i = 1, v:numel() do
    local x = v:get(i)
    v:set(i, (x >= 0 and 1 or -1) * (0.1 + math.abs(x)))
  end
  return t
end

local function assert_close_lists(a, b, tol, what)
  lu.assertEquals(#a, #b, what .. ': sizes')
  for i = 1, #a do
    if math.abs(a[i] - b[i]) > tol * math.max(1, math.abs(b[i])) then
      lu.fail(string.format('%s: entry %d is %.7g, expected %.7g', what, i, a[i], b[i]))
    end
  end
end

-- naive references ---------------------------------------------------------------------

local function conv_ref(x, w, b, s, p)
  local X, W = x:totable(), w:totable()
  local B, C, H, Wd = table.unpack(x:size())
  local Co, _, K = table.unpack(w:size())
  local Ho, Wo = floor((H + 2 * p - K) / s) + 1, floor((Wd + 2 * p - K) / s) + 1
  local out = {}
  for n = 1, B do
    for o = 1, Co do
      for i = 1, Ho do
        for j = 1, Wo do
          local acc = b and b:get(o) or 0
          for c = 1, C do
            for ki = 1, K do
              for kj = 1, K do
                local r, q = (i - 1) * s - p + ki, (j - 1) * s - p + kj
                if r >= 1 and r <= H and q >= 1 and q <= Wd then
                  acc = acc + X[n][c][r][q] * W[o][c][ki][kj]
                end
              end
            end
          end
          out[#out + 1] = acc
        end
      end
    end
  end
  return out, {B, Co, Ho, Wo}
end

local function pool_ref(x, k, s, p, kind)
  local X = x:totable()
  local B, C, H, W = table.unpack(x:size())
  local Ho, Wo = floor((H + 2 * p - k) / s) + 1, floor((W + 2 * p - k) / s) + 1
  local out = {}
  for n = 1, B do
    for c = 1, C do
      for i = 1, Ho do
        for j = 1, Wo do
          local best, sum = -math.huge, 0
          for ki = 1, k do
            for kj = 1, k do
              local r, q = (i - 1) * s - p + ki, (j - 1) * s - p + kj
              if r >= 1 and r <= H and q >= 1 and q <= W then
                best = math.max(best, X[n][c][r][q])
                sum = sum + X[n][c][r][q]
              end
            end
          end
          out[#out + 1] = kind == 'max' and best or sum / (k * k)
        end
      end
    end
  end
  return out, {B, C, Ho, Wo}
end

local function adaptive_ref(x, oh, ow)
  local X = x:totable()
  local B, C, H, W = table.unpack(x:size())
  local out = {}
  for n = 1, B do
    for c = 1, C do
      for i = 0, oh - 1 do
        for j = 0, ow - 1 do
          local r0, r1 = floor(i * H / oh), ceil((i + 1) * H / oh)
          local q0, q1 = floor(j * W / ow), ceil((j + 1) * W / ow)
          local sum = 0
          for r = r0 + 1, r1 do for q = q0 + 1, q1 do sum = sum + X[n][c][r][q] end end
          out[#out + 1] = sum / ((r1 - r0) * (q1 - q0))
        end
      end
    end
  end
  return out
end

---------------------------------------------------------------------------------------
TestConv2d = {}

local conv_cases = {
  -- B, Ci, Co, H, W, k, stride, pad
  {1, 1, 2, 5, 5, 1, 1, 0},
  {2, 2, 3, 5, 5, 1, 2, 0},
  {2, 2, 3, 5, 6, 3, 1, 1},
  {1, 3, 2, 7, 7, 3, 2, 0},
  {3, 2, 2, 7, 5, 3, 2, 1},
  {2, 1, 2, 9, 9, 7, 1, 0},
  {1, 2, 2, 9, 11, 7, 2, 1},
  {2, 2, 4, 3, 3, 3, 1, 1},
}

function TestConv2d:test_forward_matches_naive_loops()
  local g = gen(1)
  for _, c in ipairs(conv_cases) do
    local B, Ci, Co, H, W, k, s, p = table.unpack(c)
    local m = nn.Conv2d(Ci, Co, k, {stride = s, padding = p, generator = g})
    local x = agop.randn(g, B, Ci, H, W)
    local y = m:forward(x)
    local ref, size = conv_ref(x, m.weight, m.bias, s, p)
    lu.assertEquals(y:size(), size)
    assert_close_lists(gc.list(y), ref, 1e-4, 'conv ' .. table.concat(c, ','))
  end
end

function TestConv2d:test_grad_matches_finite_differences()
  local g = gen(2)
  for _, c in ipairs(conv_cases) do
    local B, Ci, Co, H, W, k, s, p = table.unpack(c)
    local m = nn.Conv2d(Ci, Co, k, {stride = s, padding = p, generator = g})
    local x = agop.randn(g, B, Ci, H, W)
    gc.assert_ok(lu, gc.check_module(m, x, {gen = g}), 5e-4,
                 string.format('conv B%d %d->%d %dx%d k%d s%d p%d', B, Ci, Co, H, W, k, s, p))
  end
end

function TestConv2d:test_grad_without_bias()
  local g = gen(3)
  local m = nn.Conv2d(2, 3, 3, {stride = 2, padding = 1, bias = false, generator = g})
  lu.assertNil(m.bias)
  local params = m:parameters()
  lu.assertEquals(#params, 1)
  gc.assert_ok(lu, gc.check_module(m, agop.randn(g, 2, 2, 6, 5), {gen = g}), 5e-4, 'no bias')
end

function TestConv2d:test_gradients_accumulate_until_zeroGrad()
  local g = gen(4)
  local m = nn.Conv2d(1, 2, 3, {generator = g})
  local x = agop.randn(g, 2, 1, 5, 5)
  local gy = agop.randn(g, 2, 2, 3, 3)
  m:forward(x)
  m:backward(x, gy)
  local once = m.gradWeight:clone()
  m:backward(x, gy)
  lu.assertTrue(agop.allclose(m.gradWeight, once * 2, 1e-5, 1e-6))
  m:zeroGrad()
  lu.assertEquals(m.gradWeight:norm(), 0)
  lu.assertEquals(m.gradBias:norm(), 0)
end

function TestConv2d:test_default_init_is_pytorch_kaiming_uniform()
  local m = nn.Conv2d(8, 16, 3, {generator = gen(5)})
  local bound = 1 / math.sqrt(8 * 9)
  lu.assertTrue(m.weight:max() <= bound and m.weight:min() >= -bound)
  lu.assertTrue(m.bias:max() <= bound and m.bias:min() >= -bound)
  -- U(-b, b) has standard deviation b / sqrt(3)
  local std = m.weight:norm() / math.sqrt(m.weight:numel())
  lu.assertAlmostEquals(std, bound / math.sqrt(3), 0.05 * bound)
  -- same generator seed, same weights; the default generator is used without one
  lu.assertTrue(nn.Conv2d(8, 16, 3, {generator = gen(5)}).weight:equal(m.weight))
  agop.manual_seed(11)
  local a = nn.Conv2d(2, 2, 3)
  agop.manual_seed(11)
  lu.assertTrue(nn.Conv2d(2, 2, 3).weight:equal(a.weight))
end

function TestConv2d:test_errors()
  local m = nn.Conv2d(3, 4, 5, {padding = 1})
  -- the input is checked once, by the binding; the module adds its name
  lu.assertErrorMsgContains('nn.Conv2d: conv2d_shape: input has 2 channels, weight expects 3 '
                            .. '(input 1x2x8x8, weight 4x3x5x5)', m.forward, m,
                            agop.zeros(1, 2, 8, 8))
  lu.assertErrorMsgContains('nn.Conv2d: conv2d_shape: input 2x8 with padding 1 is smaller '
                            .. 'than kernel 5 (input 1x3x2x8, weight 4x3x5x5)', m.forward, m,
                            agop.zeros(1, 3, 2, 8))
  lu.assertErrorMsgContains('nn.Conv2d: conv2d_shape: input must be 4-D (B, Ci, H, W), got '
                            .. '3x8x8', m.forward, m, agop.zeros(3, 8, 8))
  lu.assertErrorMsgContains('nn.Conv2d: bad argument #1', m.forward, m, 'x')
  lu.assertErrorMsgContains('backward called before forward', m.backward, m,
                            agop.zeros(1, 3, 8, 8), agop.zeros(1, 4, 6, 6))
  m:forward(agop.zeros(1, 3, 8, 8))
  lu.assertErrorMsgContains('gradOutput is 1x4x5x6 but output is 1x4x6x6', m.backward, m,
                            agop.zeros(1, 3, 8, 8), agop.zeros(1, 4, 5, 6))
  lu.assertErrorMsgContains("unknown option 'strid' (did you mean 'stride'?)", nn.Conv2d,
                            1, 2, 3, {strid = 2})
  lu.assertErrorMsgContains('stride must be an integer', nn.Conv2d, 1, 2, 3, {stride = 0})
  lu.assertErrorMsgContains('kernel size must be an integer', nn.Conv2d, 1, 2, 1.5)
end

function TestConv2d:test_tostring()
  lu.assertEquals(tostring(nn.Conv2d(1, 64, 3, {padding = 1})),
                  'nn.Conv2d(1 -> 64, 3x3, stride 1, pad 1)')
  lu.assertEquals(tostring(nn.Conv2d(2, 4, 7, {stride = 2, bias = false})),
                  'nn.Conv2d(2 -> 4, 7x7, stride 2, pad 0, no bias)')
end

---------------------------------------------------------------------------------------
TestLinear = {}

function TestLinear:test_forward_matches_naive_loops()
  local g = gen(10)
  local m = nn.Linear(5, 3, {generator = g})
  local x = agop.randn(g, 4, 5)
  local y = m:forward(x)
  local ref = {}
  for b = 1, 4 do
    for o = 1, 3 do
      local s = m.bias:get(o)
      for i = 1, 5 do s = s + x:get(b, i) * m.weight:get(o, i) end
      ref[#ref + 1] = s
    end
  end
  lu.assertEquals(y:size(), {4, 3})
  assert_close_lists(gc.list(y), ref, 1e-5, 'linear')
end

function TestLinear:test_grad_matches_finite_differences()
  local g = gen(11)
  for _, c in ipairs({{1, 4, 3, true}, {5, 7, 2, true}, {3, 6, 4, false}}) do
    local m = nn.Linear(c[2], c[3], {bias = c[4], generator = g})
    gc.assert_ok(lu, gc.check_module(m, agop.randn(g, c[1], c[2]), {gen = g}), 5e-4,
                 'linear ' .. c[1] .. 'x' .. c[2] .. '->' .. c[3])
  end
end

function TestLinear:test_errors_and_tostring()
  local m = nn.Linear(4, 2)
  lu.assertErrorMsgContains('nn.Linear: input has 3 features, expected 4', m.forward, m,
                            agop.zeros(2, 3))
  lu.assertErrorMsgContains('expected a 2-D', m.forward, m, agop.zeros(2, 2, 2))
  lu.assertEquals(tostring(m), 'nn.Linear(4 -> 2)')
  lu.assertEquals(tostring(nn.Linear(4, 2, {bias = false})), 'nn.Linear(4 -> 2, no bias)')
  lu.assertErrorMsgContains("unknown option 'baias' (did you mean 'bias'?)", nn.Linear, 1, 2,
                            {baias = false})
end

---------------------------------------------------------------------------------------
TestActivations = {}

function TestActivations:test_relu()
  local g = gen(20)
  local m = nn.ReLU()
  local x = away_from_zero(g, 2, 3, 4, 5)
  local y = m:forward(x)
  local xl, yl = gc.list(x), gc.list(y)
  for i = 1, #xl do lu.assertEquals(yl[i], math.max(xl[i], 0)) end
  gc.assert_ok(lu, gc.check_module(m, x, {gen = g}), 1e-3, 'relu')
  gc.assert_ok(lu, gc.check_module(m, away_from_zero(g, 3, 7), {gen = g}), 1e-3, 'relu 2-D')
  lu.assertEquals(tostring(m), 'nn.ReLU')
end

function TestActivations:test_flatten()
  local g = gen(21)
  local m = nn.Flatten()
  local x = agop.randn(g, 3, 2, 3, 5)
  local y = m:forward(x)
  lu.assertEquals(y:size(), {3, 30})
  lu.assertEquals(gc.list(y), gc.list(x))
  gc.assert_ok(lu, gc.check_module(m, x, {gen = g}), 1e-3, 'flatten')
  local gy = agop.randn(g, 3, 30)
  lu.assertEquals(m:backward(x, gy):size(), {3, 2, 3, 5})
end

function TestActivations:test_dropout_train_with_fixed_mask_and_eval()
  local g = gen(22)
  local m = nn.Dropout(0.25, {generator = g})
  local x = agop.randn(g, 4, 3, 5, 5)
  -- the drawn mask holds 0 or 1/(1-p) and y = x * mask
  local y = m:forward(x)
  local ml, xl, yl = gc.list(m.mask), gc.list(x), gc.list(y)
  local zeros = 0
  for i = 1, #ml do
    lu.assertTrue(ml[i] == 0 or math.abs(ml[i] - 1 / 0.75) < 1e-6)
    if ml[i] == 0 then zeros = zeros + 1 end
    lu.assertAlmostEquals(yl[i], xl[i] * ml[i], 1e-6)
  end
  lu.assertTrue(zeros > 0.15 * #ml and zeros < 0.35 * #ml, 'dropped ' .. zeros .. '/' .. #ml)
  -- with a fixed mask, forward is a function of x: finite differences apply
  m.fixed_mask = m.mask:clone()
  gc.assert_ok(lu, gc.check_module(m, x, {gen = g}), 1e-3, 'dropout train')
  m:evaluate()
  lu.assertTrue(m:forward(x):equal(x))
  gc.assert_ok(lu, gc.check_module(m, x, {gen = g}), 1e-3, 'dropout eval')
  lu.assertEquals(tostring(m), 'nn.Dropout(0.25)')
  lu.assertErrorMsgContains('p must be a number in [0, 1)', nn.Dropout, 1)
end

---------------------------------------------------------------------------------------
TestPooling = {}

local pool_cases = {
  -- B, C, H, W, k, stride, pad
  {1, 1, 4, 4, 2, 2, 0},
  {2, 3, 7, 5, 2, 2, 0},
  {2, 2, 7, 7, 3, 2, 1},
  {1, 2, 6, 5, 3, 1, 0},
  {3, 1, 9, 9, 7, 1, 3},
  {2, 2, 5, 5, 1, 2, 0},
}

function TestPooling:test_maxpool_forward_and_grad()
  local g = gen(30)
  for _, c in ipairs(pool_cases) do
    local B, C, H, W, k, s, p = table.unpack(c)
    local m = nn.MaxPool2d(k, {stride = s, padding = p})
    local x = distinct(g, B, C, H, W)
    local y = m:forward(x)
    local ref, size = pool_ref(x, k, s, p, 'max')
    lu.assertEquals(y:size(), size)
    assert_close_lists(gc.list(y), ref, 1e-6, 'maxpool ' .. table.concat(c, ','))
    gc.assert_ok(lu, gc.check_module(m, x, {gen = g}), 1e-3,
                 'maxpool ' .. table.concat(c, ','))
  end
end

function TestPooling:test_avgpool_forward_and_grad()
  local g = gen(31)
  for _, c in ipairs(pool_cases) do
    local B, C, H, W, k, s, p = table.unpack(c)
    local m = nn.AvgPool2d(k, {stride = s, padding = p})
    local x = agop.randn(g, B, C, H, W)
    local y = m:forward(x)
    local ref, size = pool_ref(x, k, s, p, 'avg')
    lu.assertEquals(y:size(), size)
    assert_close_lists(gc.list(y), ref, 1e-5, 'avgpool ' .. table.concat(c, ','))
    gc.assert_ok(lu, gc.check_module(m, x, {gen = g}), 1e-3,
                 'avgpool ' .. table.concat(c, ','))
  end
end

function TestPooling:test_adaptive_avgpool_forward_and_grad()
  local g = gen(32)
  for _, c in ipairs({{2, 2, 7, 5, 3, 2}, {1, 3, 8, 8, 1, 1}, {2, 1, 5, 7, 5, 7},
                      {1, 2, 4, 6, 3, 4}}) do
    local B, C, H, W, oh, ow = table.unpack(c)
    local m = nn.AdaptiveAvgPool2d(oh, ow)
    local x = agop.randn(g, B, C, H, W)
    local y = m:forward(x)
    lu.assertEquals(y:size(), {B, C, oh, ow})
    assert_close_lists(gc.list(y), adaptive_ref(x, oh, ow), 1e-5,
                       'adaptive ' .. table.concat(c, ','))
    gc.assert_ok(lu, gc.check_module(m, x, {gen = g}), 1e-3,
                 'adaptive ' .. table.concat(c, ','))
  end
  lu.assertEquals(tostring(nn.AdaptiveAvgPool2d(1)), 'nn.AdaptiveAvgPool2d(1x1)')
end

function TestPooling:test_defaults_errors_tostring()
  local m = nn.MaxPool2d(3)
  lu.assertEquals(m.stride, 3)
  lu.assertEquals(tostring(m), 'nn.MaxPool2d(3x3, stride 3)')
  lu.assertEquals(tostring(nn.AvgPool2d(3, {stride = 2, padding = 1})),
                  'nn.AvgPool2d(3x3, stride 2, pad 1)')
  -- the input is checked once, by the binding; the module adds its name
  lu.assertErrorMsgContains('nn.MaxPool2d: maxpool2d: input 2x5 with padding 0 is smaller '
                            .. 'than kernel 3 (input 1x1x2x5)', m.forward, m,
                            agop.zeros(1, 1, 2, 5))
  lu.assertErrorMsgContains('nn.MaxPool2d: maxpool2d: input must be 4-D (B, C, H, W), got 2x5',
                            m.forward, m, agop.zeros(2, 5))
  local a = nn.AvgPool2d(5, {padding = 1})
  lu.assertErrorMsgContains('nn.AvgPool2d: avgpool2d: input 2x5 with padding 1 is smaller '
                            .. 'than kernel 5 (input 1x1x2x5)', a.forward, a,
                            agop.zeros(1, 1, 2, 5))
  lu.assertErrorMsgContains('nn.AvgPool2d: bad argument #1', a.forward, a, {})
  lu.assertErrorMsgContains('padding 2 must be at most half', nn.MaxPool2d, 3, {padding = 2})
  lu.assertErrorMsgContains("unknown option 'strde' (did you mean 'stride'?)", nn.AvgPool2d,
                            2, {strde = 1})
end

---------------------------------------------------------------------------------------
TestBatchNorm = {}

function TestBatchNorm:test_train_mode_grad_and_statistics()
  local g = gen(40)
  local m = nn.BatchNorm2d(3, {momentum = 0.2})
  m.weight:copy(agop.rand(g, 3) + 0.5)
  m.bias:copy(agop.randn(g, 3))
  local x = agop.randn(g, 2, 3, 3, 5) * 2 + 1
  local y = m:forward(x)
  -- per channel: output mean = beta, output variance (biased) = gamma^2 (up to eps)
  for c = 1, 3 do
    local yc = y:select(2, c):contiguous()
    local xc = x:select(2, c):contiguous()
    lu.assertAlmostEquals(yc:mean(), m.bias:get(c), 1e-4)
    local var = ((yc - yc:mean()) ^ 2):mean()
    local xvar = ((xc - xc:mean()) ^ 2):mean()
    lu.assertAlmostEquals(var, m.weight:get(c) ^ 2 * xvar / (xvar + 1e-5), 1e-3)
    -- running stats: (1 - momentum) * old + momentum * batch (unbiased variance)
    local n = xc:numel()
    lu.assertAlmostEquals(m.running_mean:get(c), 0.2 * xc:mean(), 1e-5)
    lu.assertAlmostEquals(m.running_var:get(c), 0.8 + 0.2 * xvar * n / (n - 1), 1e-4)
  end
  gc.assert_ok(lu, gc.check_module(m, x, {gen = g, h = 1e-2}), 2e-3, 'batchnorm train')
  -- batch of one image: still several values per channel
  gc.assert_ok(lu, gc.check_module(m, agop.randn(g, 1, 3, 4, 3), {gen = g, h = 1e-2}), 2e-3,
               'batchnorm train B=1')
end

function TestBatchNorm:test_eval_mode_uses_running_statistics()
  local g = gen(41)
  local m = nn.BatchNorm2d(2, {eps = 1e-3})
  m.running_mean:copy(agop.tensor{0.5, -1})
  m.running_var:copy(agop.tensor{2, 0.25})
  m.weight:copy(agop.tensor{1.5, -0.5})
  m.bias:copy(agop.tensor{0.1, 0.2})
  m:evaluate()
  lu.assertFalse(m.training)
  local x = agop.randn(g, 2, 2, 3, 3)
  local y = m:forward(x)
  for c = 1, 2 do
    local rm, rv = m.running_mean:get(c), m.running_var:get(c)
    local ga, be = m.weight:get(c), m.bias:get(c)
    for b = 1, 2 do
      for i = 1, 3 do
        local want = (x:get(b, c, i, 2) - rm) / math.sqrt(rv + 1e-3) * ga + be
        lu.assertAlmostEquals(y:get(b, c, i, 2), want, 1e-5)
      end
    end
  end
  lu.assertTrue(m.running_mean:equal(agop.tensor{0.5, -1}), 'eval leaves running stats')
  gc.assert_ok(lu, gc.check_module(m, x, {gen = g}), 5e-4, 'batchnorm eval')
end

function TestBatchNorm:test_errors_and_tostring()
  local m = nn.BatchNorm2d(4)
  lu.assertEquals(tostring(m), 'nn.BatchNorm2d(4, eps 1e-05, momentum 0.1)')
  lu.assertErrorMsgContains('input has 3 channels, expected 4', m.forward, m,
                            agop.zeros(2, 3, 2, 2))
  lu.assertErrorMsgContains('more than one value per channel', m.forward, m,
                            agop.zeros(1, 4, 1, 1))
  lu.assertErrorMsgContains("unknown option 'momentun'", nn.BatchNorm2d, 4, {momentun = 0.5})
  local names = {}
  for _, e in ipairs(m:state_dict()) do names[#names + 1] = e.name end
  lu.assertEquals(names, {'weight', 'bias', 'running_mean', 'running_var'})
end

---------------------------------------------------------------------------------------
TestCrossEntropy = {}

function TestCrossEntropy:test_value_and_grad()
  local g = gen(50)
  local crit = nn.CrossEntropyLoss()
  local x = agop.randn(g, 4, 5) * 2
  local labels = agop.tensor{0, 4, 2, 2}
  local loss = crit:forward(x, labels)
  -- by hand: mean of logsumexp(x_b) - x_b[label]
  local want = 0
  for b = 1, 4 do
    local m, s = -math.huge, 0
    for c = 1, 5 do m = math.max(m, x:get(b, c)) end
    for c = 1, 5 do s = s + math.exp(x:get(b, c) - m) end
    want = want + (m + math.log(s) - x:get(b, labels:get(b) + 1)) / 4
  end
  lu.assertAlmostEquals(loss, want, 1e-5)
  local gx = crit:backward(x, labels)
  local num = gc.numeric(x, function() return crit:forward(x, labels) end, 1e-2)
  local r = gc.compare(gc.list(gx), num)
  lu.assertTrue(r.err < 1e-3, gc.describe(r))
  -- a Lua list of labels works too
  lu.assertAlmostEquals(crit:forward(x, {0, 4, 2, 2}), want, 1e-5)
end

function TestCrossEntropy:test_errors()
  local crit = nn.CrossEntropyLoss()
  lu.assertErrorMsgContains('backward called before forward', crit.backward, crit,
                            agop.zeros(2, 3), agop.tensor{0, 1})
  -- labels are checked once, by the engine; the module adds its name
  lu.assertErrorMsgContains('nn.CrossEntropyLoss: cross_entropy: label 3 of sample 2 (of 2) '
                            .. 'is not a class id in 0..2', crit.forward, crit,
                            agop.zeros(2, 3), agop.tensor{0, 3})
  lu.assertErrorMsgContains('label -1 of sample 1', crit.forward, crit, agop.zeros(2, 3),
                            agop.tensor{-1, 0})
  lu.assertErrorMsgContains('label 0.5 of sample 2', crit.forward, crit, agop.zeros(2, 3),
                            agop.tensor{0, 0.5})
  lu.assertErrorMsgContains('labels must be (2) for logits 2x3, got 3', crit.forward, crit,
                            agop.zeros(2, 3), agop.tensor{0, 1, 2})
  lu.assertErrorMsgContains('labels list is empty', crit.forward, crit, agop.zeros(2, 3), {})
  -- backward returns forward's gradient: it must be asked for forward's labels
  crit:forward(agop.zeros(2, 3), {0, 1})
  lu.assertEquals(crit:backward(agop.zeros(2, 3), agop.tensor{0, 1}):size(), {2, 3})
  lu.assertErrorMsgContains('backward labels differ', crit.backward, crit, agop.zeros(2, 3),
                            {0, 2})
  lu.assertErrorMsgContains('backward labels differ', crit.backward, crit, agop.zeros(2, 3),
                            {0, 1, 1})
end

---------------------------------------------------------------------------------------

-- nn.ReLU{inplace = true}: the same values and gradients as out of place, in the input's
-- and gradOutput's own tensors.
function TestActivations:test_relu_inplace()
  local g = gen(77)
  local x = agop.randn(g, 2, 3, 4, 4)
  local gy = agop.randn(g, 2, 3, 4, 4)
  local ref = nn.ReLU()
  local y0, gx0 = ref:forward(x):clone(), ref:backward(x, gy):clone()
  local m = nn.ReLU({inplace = true})
  local xi, gyi = x:clone(), gy:clone()
  local y = m:forward(xi)
  lu.assertTrue(y == xi)
  lu.assertTrue(y:equal(y0))
  local gx = m:backward(xi, gyi)
  lu.assertTrue(gx == gyi)
  lu.assertTrue(gx:equal(gx0))
  lu.assertErrorMsgContains("unknown option 'in_place'", nn.ReLU, {in_place = true})
end
