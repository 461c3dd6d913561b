-- nn modules: finite-difference gradient checks (in double) for every layer, forward
-- against naive Lua loops, Sequential behaviour, flat parameters, errors.
local lu = require('luaunit')
local agop = require('agop')
local nn = require('agop.nn')
local optim = require('agop.optim')
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
  lu.assertErrorMsgContains('nn.Conv2d: input has 2 channels, expected 3', m.forward, m,
                            agop.zeros(1, 2, 8, 8))
  lu.assertErrorMsgContains('smaller than the 5x5 kernel', m.forward, m,
                            agop.zeros(1, 3, 2, 8))
  lu.assertErrorMsgContains('expected a 4-D', m.forward, m, agop.zeros(3, 8, 8))
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
  lu.assertErrorMsgContains('smaller than the 3x3 window', m.forward, m, agop.zeros(1, 1, 2, 5))
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
  lu.assertErrorMsgContains('Sequential[3] (nn.Conv2d): nn.Conv2d: input has 2 channels, '
                            .. 'expected 3', net.forward, net, agop.zeros(1, 1, 5, 5))
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
