-- The kernel bindings (bindings/{conv,linear,act,pool,batchnorm}.c): results against naive
-- Lua loops, in-place accumulation, optional arguments, and every bad argument raising a
-- Lua error that names the function and the shapes. (The numerics are tested in depth by
-- the C tests tests/c/test_{conv,pool,act,batchnorm,linear}.c.)
local lu = require('luaunit')
local agop = require('agop')

local function errors_with(pattern, f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, 'expected an error containing ' .. pattern)
  lu.assertStrContains(tostring(err), pattern)
end

local function assert_close(a, b, tol)
  lu.assertEquals(a:size(), b:size())
  lu.assertTrue(agop.allclose(a, b, tol or 1e-5, tol or 1e-5),
    string.format('max difference %g', (a - b):abs():max()))
end

-- y[b][o][i][j] = bias[o] + sum w[o][c][kh][kw] * x[b][c][i*s-p+kh][j*s-p+kw]
local function naive_conv(x, w, bias, s, p)
  local B, C, H, W = table.unpack(x:size())
  local O, _, K = table.unpack(w:size())
  local ho, wo = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
  local y = agop.zeros(B, O, ho, wo)
  for b = 1, B do
    for o = 1, O do
      for i = 1, ho do
        for j = 1, wo do
          local acc = bias and bias:get(o) or 0
          for c = 1, C do
            for kh = 1, K do
              for kw = 1, K do
                local ih, iw = (i - 1) * s - p + kh, (j - 1) * s - p + kw
                if ih >= 1 and ih <= H and iw >= 1 and iw <= W then
                  acc = acc + w:get(o, c, kh, kw) * x:get(b, c, ih, iw)
                end
              end
            end
          end
          y:set(b, o, i, j, acc)
        end
      end
    end
  end
  return y
end

TestKernels = {}

function TestKernels:test_conv2d_matches_a_naive_loop()
  local g = agop.Generator(1)
  local x, w, b = agop.randn(g, 2, 3, 7, 6), agop.randn(g, 4, 3, 3, 3), agop.randn(g, 4)
  assert_close(agop.conv2d(x, w, b, 1, 1), naive_conv(x, w, b, 1, 1))
  assert_close(agop.conv2d(x, w, nil, 2, 0), naive_conv(x, w, nil, 2, 0))
  -- stride and padding default to 1 and 0
  assert_close(agop.conv2d(x, w), naive_conv(x, w, nil, 1, 0))
  -- a non-contiguous input is used as its contiguous copy
  local xt = x:transpose(3, 4)
  assert_close(agop.conv2d(xt, w, b, 1, 1), naive_conv(xt:contiguous(), w, b, 1, 1))
end

function TestKernels:test_conv2d_backward_accumulates_and_matches_the_adjoint()
  local g = agop.Generator(2)
  local x, w = agop.randn(g, 2, 2, 5, 5), agop.randn(g, 3, 2, 3, 3)
  local gy = agop.randn(g, 2, 3, 5, 5)
  local gw, gb = agop.zeros(3, 2, 3, 3), agop.zeros(3)
  local gx = agop.conv2d_backward(x, w, gy, 1, 1, gw, gb, true)
  lu.assertEquals(gx:size(), {2, 2, 5, 5})
  -- <conv(x), gy> = <x, gx> (the input gradient is the adjoint) and = <w, gw>
  local lhs = agop.dot(agop.conv2d(x, w, nil, 1, 1):view(-1), gy:view(-1))
  lu.assertAlmostEquals(agop.dot(x:view(-1), gx:view(-1)), lhs, 1e-3 * math.abs(lhs) + 1e-3)
  lu.assertAlmostEquals(agop.dot(w:view(-1), gw:view(-1)), lhs, 1e-3 * math.abs(lhs) + 1e-3)
  assert_close(gb, gy:sum(4):sum(3):sum(1))
  -- a second call adds onto gw and gb; need_gx = false returns nil
  local gw1, gb1 = gw:clone(), gb:clone()
  lu.assertNil(agop.conv2d_backward(x, w, gy, 1, 1, gw, gb, false))
  assert_close(gw, gw1 * 2)
  assert_close(gb, gb1 * 2)
  -- the input gradient alone
  assert_close(agop.conv2d_backward(x, w, gy, 1, 1, nil, nil, true), gx)
end

-- agop.conv2d_shape: conv2d's output sizes, and its checks under its own name
function TestKernels:test_conv2d_shape()
  local w = agop.zeros(4, 3, 3, 3)
  lu.assertEquals(agop.conv2d_shape(agop.zeros(2, 3, 8, 8), w, 1, 1), {2, 4, 8, 8})
  lu.assertEquals(agop.conv2d_shape(agop.zeros(2, 3, 8, 7), w, 2, 0), {2, 4, 3, 3})
  lu.assertEquals(agop.conv2d_shape(agop.zeros(1, 3, 3, 3), w), {1, 4, 1, 1}) -- 1 and 0
  for _, c in ipairs{{8, 8, 1, 1}, {9, 5, 2, 0}, {4, 6, 3, 2}} do
    local x = agop.zeros(2, 3, c[1], c[2])
    lu.assertEquals(agop.conv2d_shape(x, w, c[3], c[4]), agop.conv2d(x, w, nil, c[3], c[4]):size())
  end
  errors_with('conv2d_shape: input has 2 channels, weight expects 3 (input 1x2x8x8, weight '
    .. '4x3x3x3)', agop.conv2d_shape, agop.zeros(1, 2, 8, 8), w)
  errors_with('conv2d_shape: input 2x8 with padding 0 is smaller than kernel 3',
    agop.conv2d_shape, agop.zeros(1, 3, 2, 8), w, 1, 0)
  errors_with('conv2d_shape: stride must be an integer in [1, 4096], got 0', agop.conv2d_shape,
    agop.zeros(1, 3, 8, 8), w, 0)
  errors_with('conv2d_shape: weight must be 4-D', agop.conv2d_shape, agop.zeros(1, 3, 8, 8),
    agop.zeros(4, 27))
end

function TestKernels:test_conv2d_bad_arguments()
  local x, w = agop.zeros(2, 3, 8, 8), agop.zeros(4, 1, 3, 3)
  errors_with('conv2d: input has 3 channels, weight expects 1', agop.conv2d, x, w, nil, 1, 1)
  errors_with('conv2d: input 2x2 with padding 0 is smaller than kernel 3', agop.conv2d,
    agop.zeros(1, 1, 2, 2), w, nil, 1, 0)
  errors_with('conv2d: stride must be an integer in [1, 4096], got 0', agop.conv2d,
    agop.zeros(1, 1, 8, 8), w, nil, 0, 0)
  errors_with('conv2d: padding must be an integer', agop.conv2d, agop.zeros(1, 1, 8, 8), w, nil,
    1, 0 / 0)
  errors_with('conv2d: input must be 4-D (B, Ci, H, W), got 3x8x8', agop.conv2d,
    agop.zeros(3, 8, 8), w)
  errors_with('conv2d: bias must be 4, got 3', agop.conv2d, agop.zeros(1, 1, 8, 8), w,
    agop.zeros(3))
  errors_with('agop.Tensor expected, got string', agop.conv2d, 'x', w)
  local x1 = agop.zeros(1, 1, 8, 8)
  errors_with('conv2d_backward: output gradient must be 1x4x6x6, got 1x4x8x8',
    agop.conv2d_backward, x1, w, agop.zeros(1, 4, 8, 8), 1, 0, nil, nil, true)
  errors_with('conv2d_backward: weight gradient must be 4x1x3x3, got 4x1x3',
    agop.conv2d_backward, x1, w, agop.zeros(1, 4, 6, 6), 1, 0, agop.zeros(4, 1, 3), nil, true)
  errors_with('conv2d_backward: weight gradient is updated in place and must be contiguous',
    agop.conv2d_backward, x1, w, agop.zeros(1, 4, 6, 6), 1, 0,
    agop.zeros(4, 1, 3, 3):transpose(3, 4), nil, true)
  errors_with('conv2d_backward: need_gx must be a boolean', agop.conv2d_backward, x1, w,
    agop.zeros(1, 4, 6, 6), 1, 0, nil, nil, 1)
end

function TestKernels:test_linear_forward_backward_and_errors()
  local x = agop.tensor{{1, 2, 3}, {4, 5, 6}}
  local w = agop.tensor{{1, 0, -1}, {0.5, 0.5, 0.5}}
  local b = agop.tensor{10, 20}
  assert_close(agop.linear(x, w, b), agop.tensor{{8, 23}, {8, 27.5}})
  local gw, gb = agop.zeros(2, 3), agop.zeros(2)
  local gy = agop.tensor{{1, 0}, {0, 2}}
  local gx = agop.linear_backward(x, w, gy, gw, gb, true)
  assert_close(gx, agop.tensor{{1, 0, -1}, {1, 1, 1}})
  assert_close(gw, agop.tensor{{1, 2, 3}, {8, 10, 12}})
  assert_close(gb, agop.tensor{1, 2})
  lu.assertNil(agop.linear_backward(x, w, gy, gw, nil, false))
  assert_close(gw, agop.tensor{{2, 4, 6}, {16, 20, 24}})
  errors_with('linear: input has 3 features, weight expects 2', agop.linear, x, agop.zeros(4, 2))
  errors_with('linear: input must be 2-D (B, In), got 6', agop.linear, x:view(-1), w)
  errors_with('linear_backward: output gradient must be 2x2, got 2x3', agop.linear_backward,
    x, w, agop.zeros(2, 3), nil, nil, true)
end

function TestKernels:test_relu_softmax_cross_entropy()
  local x = agop.tensor{{-1, 0, 2}, {3, -4, 0.5}}
  local y = agop.relu(x)
  assert_close(y, agop.tensor{{0, 0, 2}, {3, 0, 0.5}})
  assert_close(agop.relu_backward(y, agop.ones(2, 3)), agop.tensor{{0, 0, 1}, {1, 0, 1}})
  errors_with('relu_backward: output 2x3 and gradient 3x2 differ in shape', agop.relu_backward,
    y, agop.ones(3, 2))
  local s = agop.softmax(x)
  assert_close(s:sum(2), agop.ones(2))
  assert_close(agop.log_softmax(x), s:log())
  -- a single row
  assert_close(agop.softmax(agop.tensor{0, 0}), agop.tensor{0.5, 0.5})
  local loss, g = agop.cross_entropy(agop.tensor{{1, 2, 3}, {1, 1, 1}}, agop.tensor{2, 0})
  lu.assertAlmostEquals(loss, 0.753109126555, 1e-9)
  lu.assertEquals(math.type(loss), 'float')
  lu.assertAlmostEquals(g:get(2, 1), (1 / 3 - 1) / 2, 1e-7)
  errors_with('cross_entropy: label 3 of sample 2 (of 2) is not a class id in 0..2',
    agop.cross_entropy, agop.zeros(2, 3), agop.tensor{0, 3})
  errors_with('cross_entropy: label 0.5 of sample 1', agop.cross_entropy, agop.zeros(2, 3),
    agop.tensor{0.5, 1})
  errors_with('cross_entropy: labels must be (2) for logits 2x3, got 3', agop.cross_entropy,
    agop.zeros(2, 3), agop.zeros(3))
end

function TestKernels:test_dropout_uses_the_generator()
  local x = agop.ones(1000)
  local y1, m1 = agop.dropout(x, 0.3, agop.Generator(7))
  local y2, m2 = agop.dropout(x, 0.3, agop.Generator(7))
  lu.assertTrue(m1:equal(m2))
  lu.assertTrue(y1:equal(x * m1))
  local kept = 0
  for i = 1, 1000 do
    local v = m1:get(i)
    lu.assertTrue(v == 0 or math.abs(v - 1 / 0.7) < 1e-6, 'mask value ' .. v)
    if v ~= 0 then kept = kept + 1 end
  end
  lu.assertTrue(kept > 620 and kept < 780, 'kept ' .. kept)
  local y3 = agop.dropout(x, 0.3) -- the default generator
  lu.assertEquals(y3:size(), {1000})
  errors_with('dropout: p must be in [0, 1], got 1.5', agop.dropout, x, 1.5)
  errors_with('dropout: argument 3 must be an agop.Generator or nil', agop.dropout, x, 0.5, 3)
end

function TestKernels:test_pooling()
  local x = agop.tensor{{{{1, 5, 5, 0}, {5, 5, 2, 2}, {-3, -3, -3, -3}, {-3, -3, -3, -3}}}}
  local y, idx = agop.maxpool2d(x, 2) -- stride defaults to the kernel size
  assert_close(y, agop.tensor{{{{5, 5}, {-3, -3}}}})
  assert_close(idx, agop.tensor{{{{1, 2}, {8, 10}}}}) -- first maximum, 0-based offsets
  local gx = agop.maxpool2d_backward(x, idx, agop.tensor{{{{1, 2}, {3, 4}}}})
  assert_close(gx, agop.tensor{{{{0, 1, 2, 0}, {0, 0, 0, 0}, {3, 0, 4, 0}, {0, 0, 0, 0}}}})
  local a = agop.avgpool2d(x, 2, 2, 0)
  assert_close(a, agop.tensor{{{{4, 2.25}, {-3, -3}}}})
  assert_close(agop.avgpool2d_backward(x, agop.ones(1, 1, 2, 2), 2, 2, 0), agop.full(0.25, 1, 1, 4, 4))
  local m = agop.adaptive_avgpool2d(x, 1, 1)
  lu.assertAlmostEquals(m:get(1, 1, 1, 1), x:mean(), 1e-6)
  assert_close(agop.adaptive_avgpool2d_backward(x, agop.ones(1, 1, 1, 1)), agop.full(1 / 16, 1, 1, 4, 4))
  errors_with('maxpool2d: input 1x1 with padding 0 is smaller than kernel 2', agop.maxpool2d,
    agop.zeros(1, 1, 1, 1), 2, 2, 0)
  errors_with('maxpool2d: padding must be in [0, kernel/2]', agop.maxpool2d, x, 2, 2, 2)
  errors_with('maxpool2d_backward: index 16 at position 1 is not a pixel of a 4x4 plane',
    agop.maxpool2d_backward, x, agop.full(16, 1, 1, 2, 2), agop.ones(1, 1, 2, 2))
  errors_with('avgpool2d_backward: output gradient must be 1x1x2x2, got 1x1x3x3',
    agop.avgpool2d_backward, x, agop.ones(1, 1, 3, 3), 2, 2, 0)
  errors_with('adaptive_avgpool2d: output height must be an integer', agop.adaptive_avgpool2d,
    x, 0, 1)
end

function TestKernels:test_batchnorm2d_train_and_eval()
  local g = agop.Generator(3)
  local x = agop.randn(g, 4, 2, 3, 3) * 2 + 1
  local gamma, beta = agop.tensor{1, 2}, agop.tensor{0, -1}
  local rm, rv = agop.zeros(2), agop.ones(2)
  local y, sm, si = agop.batchnorm2d(x, gamma, beta, rm, rv, true, 0.1, 1e-5)
  -- per channel: mean gamma*0+beta, and the running averages moved by 10%
  local n = 4 * 9
  for c = 1, 2 do
    local xc = x:narrow(2, c, 1)
    local mean = xc:sum() / n
    local var = ((xc - mean) * (xc - mean)):sum() / n
    lu.assertAlmostEquals(sm:get(c), mean, 1e-5)
    lu.assertAlmostEquals(si:get(c), 1 / math.sqrt(var + 1e-5), 1e-4)
    lu.assertAlmostEquals(rm:get(c), 0.1 * mean, 1e-5)
    lu.assertAlmostEquals(rv:get(c), 0.9 + 0.1 * var * n / (n - 1), 1e-5)
    lu.assertAlmostEquals(y:narrow(2, c, 1):sum() / n, beta:get(c), 1e-5)
  end
  -- evaluation uses the running statistics and leaves them alone
  local rm0, rv0 = rm:clone(), rv:clone()
  local ye = agop.batchnorm2d(x, gamma, beta, rm, rv, false)
  lu.assertTrue(rm:equal(rm0) and rv:equal(rv0))
  lu.assertAlmostEquals(ye:get(1, 2, 1, 1),
    (x:get(1, 2, 1, 1) - rm:get(2)) / math.sqrt(rv:get(2) + 1e-5) * 2 - 1, 1e-5)
  -- backward: the gradient of sum(y) w.r.t. x is 0 in training (y's mean is fixed)
  local ggamma, gbeta = agop.zeros(2), agop.zeros(2)
  local gx = agop.batchnorm2d_backward(x, gamma, agop.ones(4, 2, 3, 3), sm, si, ggamma, gbeta, true)
  lu.assertTrue(gx:abs():max() < 1e-5)
  assert_close(gbeta, agop.tensor{n, n})
  errors_with('batchnorm2d: training needs more than 1 value per channel', agop.batchnorm2d,
    agop.zeros(1, 2, 1, 1), nil, nil, nil, nil, true)
  errors_with('batchnorm2d: evaluation mode needs running_mean and running_var',
    agop.batchnorm2d, x, gamma, beta, nil, nil, false)
  errors_with('batchnorm2d: gamma must be 2, got 3', agop.batchnorm2d, x, agop.ones(3))
  errors_with('batchnorm2d: momentum must be in [0, 1], got 2', agop.batchnorm2d, x, nil, nil,
    rm, rv, true, 2)
  errors_with('batchnorm2d_backward: save_mean must be 2, got 1', agop.batchnorm2d_backward, x,
    gamma, x, agop.zeros(1), si, nil, nil, true)
end

-- Output buffers (kcheck.h's kc_out): a tensor of the right size is refilled and returned,
-- anything else means a new tensor; results equal the fresh ones.
function TestKernels:test_output_buffers_are_refilled_when_they_fit()
  local g = agop.Generator(21)
  local x = agop.randn(g, 2, 3, 4, 4)
  local out = agop.randn(g, 2, 3, 4, 4)
  local y = agop.relu(x, out)
  lu.assertTrue(y == out)
  lu.assertTrue(y:equal(agop.relu(x)))
  local other = agop.zeros(2, 3, 4, 5)
  lu.assertFalse(agop.relu(x, other) == other)
  local gy = agop.randn(g, 2, 3, 4, 4)
  local gbuf = agop.zeros(2, 3, 4, 4)
  lu.assertTrue(agop.relu_backward(y, gy, gbuf) == gbuf)
  lu.assertTrue(gbuf:equal(agop.relu_backward(y, gy)))
  local py, pi = agop.maxpool2d(x, 2)
  local ybuf, ibuf = agop.randn(g, 2, 3, 2, 2), agop.randn(g, 2, 3, 2, 2)
  local y2, i2 = agop.maxpool2d(x, 2, 2, 0, ybuf, ibuf)
  lu.assertTrue(y2 == ybuf and i2 == ibuf)
  lu.assertTrue(y2:equal(py) and i2:equal(pi))
  lu.assertErrorMsgContains('share a buffer', agop.maxpool2d, x, 2, 2, 0, ybuf, ybuf)
  local pg = agop.randn(g, 2, 3, 2, 2)
  local gxbuf = agop.randn(g, 2, 3, 4, 4) -- stale values must not leak into the result
  lu.assertTrue(agop.maxpool2d_backward(x, pi, pg, gxbuf) == gxbuf)
  lu.assertTrue(gxbuf:equal(agop.maxpool2d_backward(x, pi, pg)))
end
