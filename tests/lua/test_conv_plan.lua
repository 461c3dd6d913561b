-- The oneDNN conv path (engine/conv_plan.c, bindings/conv.c's agop.conv2d_plan, and
-- nn.Conv2d on it) against the im2col + OpenBLAS reference path, on the shapes of the
-- VGG11 stack and on odd ones.
--
-- Error bounds, relative to the largest entry of the reference result:
--   direct:   1e-5 (both paths sum the same products in float, in different orders; the
--             measured worst is ~4e-6 for the weight gradient over 65536 positions)
--   Winograd: 2e-5 (F(4x4, 3x3) transforms lose ~2 more digits per product than direct
--             sums do; the measured worst here is ~2e-6, and a wrong transform or a
--             missed tile gives errors of order 1)
local lu = require('luaunit')
local agop = require('agop')
local nn = require('agop.nn')
local gc = require('gradcheck')

local DIRECT_TOL, WINO_TOL = 1e-5, 2e-5

local function rel(a, b)
  lu.assertEquals(a:size(), b:size())
  return (a - b):abs():max() / b:abs():max()
end

-- plan and im2col results for x (B, Ci, H, W), w (Co, Ci, 3, 3) at stride s, pad p
local function compare(g, shape, co, algo, tol, s, p)
  s, p = s or 1, p or 1
  local x = agop.randn(g, table.unpack(shape))
  local w = agop.randn(g, co, shape[2], 3, 3)
  local b = agop.randn(g, co)
  local plan, msg = agop.conv2d_plan(x, w, s, p, algo)
  lu.assertNotNil(plan, msg)
  local y0 = agop.conv2d(x, w, b, s, p)
  local gy = agop.randn(g, y0:size())
  local gw0, gb0 = agop.randn(g, w:size()), agop.randn(g, co)
  local gw1, gb1 = gw0:clone(), gb0:clone()
  local gx0 = agop.conv2d_backward(x, w, gy, s, p, gw0, gb0, true)
  local y1 = plan:forward(x, w, b)
  local gx1 = plan:backward(x, w, gy, gw1, gb1, true)
  local what = string.format('%s %s -> %d', algo, table.concat(shape, 'x'), co)
  for name, e in pairs{output = rel(y1, y0), input_grad = rel(gx1, gx0),
                       weight_grad = rel(gw1, gw0), bias_grad = rel(gb1, gb0)} do
    lu.assertTrue(e < tol, string.format('%s: %s relative error %g', what, name, e))
  end
  return plan
end

-- registered only in a build with oneDNN (TestConvPlanWithoutDnnl otherwise)
local TestConvPlan = {}

function TestConvPlan:test_direct_matches_im2col_on_vgg_shapes()
  local g = agop.Generator(1)
  compare(g, {16, 1, 32, 32}, 64, 'direct', DIRECT_TOL)
  compare(g, {8, 64, 16, 16}, 128, 'direct', DIRECT_TOL)
  compare(g, {8, 512, 2, 2}, 512, 'direct', DIRECT_TOL)
end

function TestConvPlan:test_winograd_matches_im2col_within_its_bound()
  local g = agop.Generator(2)
  for _, c in ipairs{{{8, 64, 16, 16}, 128}, {{8, 128, 8, 8}, 256}, {{8, 256, 4, 4}, 512}} do
    local plan = compare(g, c[1], c[2], 'winograd', WINO_TOL)
    lu.assertStrContains(plan:info().forward, 'wino')
  end
end

function TestConvPlan:test_odd_shapes_stride_and_padding()
  local g = agop.Generator(3)
  compare(g, {3, 5, 7, 9}, 6, 'auto', DIRECT_TOL)
  compare(g, {2, 4, 9, 8}, 3, 'direct', DIRECT_TOL, 2, 0)
  compare(g, {2, 4, 10, 11}, 3, 'direct', DIRECT_TOL, 2, 1)
end

function TestConvPlan:test_auto_picks_winograd_where_it_wins()
  local g = agop.Generator(4)
  local function impl(shape, co)
    local plan = agop.conv2d_plan(agop.randn(g, table.unpack(shape)),
                                  agop.randn(g, co, shape[2], 3, 3), 1, 1)
    plan:forward(agop.randn(g, table.unpack(shape)), agop.randn(g, co, shape[2], 3, 3))
    return plan:info().forward
  end
  lu.assertStrContains(impl({4, 64, 16, 16}, 128), 'wino')
  lu.assertNotStrContains(impl({4, 1, 32, 32}, 64), 'wino')   -- one input channel
  lu.assertNotStrContains(impl({4, 512, 2, 2}, 512), 'wino')  -- 2x2 outputs
end

function TestConvPlan:test_auto_hands_the_passes_im2col_wins_to_im2col()
  -- conv_plan.c's pass_im2col: the weight gradient of outputs of at most 4x4 pixels that
  -- do not take Winograd's runs im2col + oneDNN's sgemm (within the direct bound of the
  -- reference: the same sums in another order), the input gradient of a direct conv with < 16 input channels runs
  -- conv.h's code (the im2col path bit for bit); 'direct' plans never do either
  local g = agop.Generator(11)
  local function passes(shape, co, algo)
    local x = agop.randn(g, table.unpack(shape))
    local w = agop.randn(g, co, shape[2], 3, 3)
    local plan = assert(agop.conv2d_plan(x, w, 1, 1, algo))
    local gy = agop.randn(g, shape[1], co, shape[3], shape[4])
    local gw0, gb0 = agop.randn(g, w:size()), agop.randn(g, co)
    local gw1, gb1 = gw0:clone(), gb0:clone()
    local gx0 = agop.conv2d_backward(x, w, gy, 1, 1, gw0, gb0, true)
    local gx1 = plan:backward(x, w, gy, gw1, gb1, true)
    return plan:info(), gx1:equal(gx0), math.max(rel(gx1, gx0), rel(gw1, gw0), rel(gb1, gb0))
  end
  -- {input, Co, algo, weight-gradient path, input-gradient path, bound of both}
  local cases = {
    {{8, 512, 2, 2}, 512, 'auto', 'im2col+dnnl_sgemm', 'jit', DIRECT_TOL},
    -- 450 images: two blocks of 225 through the columns buffer (GEMM_DW_BYTES)
    {{450, 512, 2, 2}, 64, 'auto', 'im2col+dnnl_sgemm', 'jit', DIRECT_TOL},
    -- 4x4 outputs of a layer above WINO_WEIGHT_GRAD_MAX channel pairs: the sgemm while
    -- Winograd's scratchpad is more than 1 MiB per image, Winograd once the batch earns it
    {{8, 256, 4, 4}, 512, 'auto', 'im2col+dnnl_sgemm', 'wino', WINO_TOL},
    {{128, 256, 4, 4}, 512, 'auto', 'wino', 'wino', WINO_TOL},
    {{4, 1, 32, 32}, 64, 'auto_direct_forward', 'jit', 'im2col+sgemm', DIRECT_TOL},
    {{4, 64, 8, 8}, 64, 'auto', 'wino', 'wino', WINO_TOL}, -- 8x8: Winograd keeps it
    {{4, 64, 4, 4}, 64, 'auto', 'wino', 'wino', WINO_TOL}, -- small layers: at 4x4 too
    {{8, 512, 2, 2}, 512, 'direct', 'jit', 'jit', DIRECT_TOL},
    {{4, 1, 32, 32}, 64, 'direct', 'jit', 'jit', DIRECT_TOL},
  }
  for _, c in ipairs(cases) do
    local info, same_gx, e = passes(c[1], c[2], c[3])
    local what = string.format('%s %s -> %d', c[3], table.concat(c[1], 'x'), c[2])
    lu.assertStrContains(info.weight_grad, c[4], false, what)
    lu.assertStrContains(info.input_grad, c[5], false, what)
    lu.assertTrue(e < c[6], string.format('%s: relative error %g', what, e))
    if c[5] == 'im2col+sgemm' then
      lu.assertTrue(same_gx, what .. ': the input gradient differs from the im2col path')
    end
  end
end

function TestConvPlan:test_reused_output_buffers_hold_the_new_results()
  local g = agop.Generator(5)
  local x1, x2 = agop.randn(g, 4, 16, 8, 8), agop.randn(g, 4, 16, 8, 8)
  local w = agop.randn(g, 32, 16, 3, 3)
  local plan = assert(agop.conv2d_plan(x1, w, 1, 1))
  local y = plan:forward(x1, w, nil)
  local y2 = plan:forward(x2, w, nil, y)
  lu.assertTrue(y2 == y)
  lu.assertTrue(rel(y, agop.conv2d(x2, w, nil, 1, 1)) < WINO_TOL)
  local gy = agop.randn(g, y:size())
  local gx = plan:backward(x1, w, gy, nil, nil, agop.zeros(4, 16, 8, 8))
  lu.assertTrue(rel(gx, agop.conv2d_backward(x1, w, gy, 1, 1, nil, nil, true)) < WINO_TOL)
  lu.assertNil(plan:backward(x1, w, gy, nil, nil, false))
end

function TestConvPlan:test_bad_arguments_raise_errors_naming_the_method()
  local g = agop.Generator(6)
  local x, w = agop.randn(g, 2, 16, 8, 8), agop.randn(g, 32, 16, 3, 3)
  local plan = assert(agop.conv2d_plan(x, w, 1, 1, 'direct'))
  local function errs(pat, f, ...)
    local ok, e = pcall(f, ...)
    lu.assertFalse(ok)
    lu.assertStrContains(tostring(e), pat)
  end
  errs('ConvPlan:forward: input must be 2x16x8x8', plan.forward, plan, agop.randn(g, 3, 16, 8, 8), w)
  errs('ConvPlan:forward: bias', plan.forward, plan, x, w, agop.zeros(31))
  errs('ConvPlan:forward: output must be', plan.forward, plan, x, w, nil, agop.zeros(2, 32, 8, 7))
  errs('ConvPlan:backward: output gradient', plan.backward, plan, x, w, agop.zeros(2, 32, 8, 7))
  errs('ConvPlan:backward: weight gradient', plan.backward, plan, x, w, agop.zeros(2, 32, 8, 8),
       agop.zeros(32, 16, 3, 2))
  errs("invalid option 'fast'", agop.conv2d_plan, x, w, 1, 1, 'fast')
  plan:close()
  errs('closed', plan.forward, plan, x, w)
end

-- Finite differences (in double) through nn.Conv2d on the oneDNN path, both algorithms.
function TestConvPlan:test_conv2d_module_gradients_on_dnnl()
  local old = nn.set_conv_backend('dnnl')
  local ok, err = pcall(function()
    local g = agop.Generator(7)
    for _, cfg in ipairs{{2, 16, 6, 6, 16}, {2, 3, 5, 5, 4}} do
      local conv = nn.Conv2d(cfg[2], cfg[5], 3, {padding = 1, generator = g})
      local x = agop.randn(g, cfg[1], cfg[2], cfg[3], cfg[4])
      local r = gc.check_module(conv, x, {gen = g, h = 1e-2})
      gc.assert_ok(lu, r, 2e-3, 'dnnl conv ' .. table.concat(cfg, 'x'))
    end
  end)
  nn.set_conv_backend(old)
  assert(ok, err)
end

-- nn.Conv2d's input is checked by the binding before a plan is made: a bad input gets
-- the binding's message under the module's name, and no plan
function TestConvPlan:test_conv2d_module_makes_no_plan_for_a_bad_input()
  local old = nn.set_conv_backend('dnnl')
  local ok, err = pcall(function()
    local m = nn.Conv2d(3, 4, 5, {padding = 1})
    lu.assertErrorMsgContains('nn.Conv2d: conv2d_shape: input has 2 channels, weight expects 3',
                              m.forward, m, agop.zeros(1, 2, 8, 8))
    lu.assertErrorMsgContains('nn.Conv2d: conv2d_shape: input 2x8 with padding 1 is smaller '
                              .. 'than kernel 5', m.forward, m, agop.zeros(1, 3, 2, 8))
    lu.assertErrorMsgContains('nn.Conv2d: conv2d_shape: input must be 4-D', m.forward, m,
                              agop.zeros(3, 8, 8))
    lu.assertNil(m._plans)
    local x = agop.randn(agop.Generator(3), 1, 3, 8, 8)
    lu.assertEquals(m:forward(x):size(), {1, 4, 6, 6})
    lu.assertEquals(#m._plans, 1)
    lu.assertNotNil(m._plans[1].plan) -- the plan path ran
    -- the plan's own checks name the module too
    m.weight = agop.zeros(4, 3, 3, 3)
    lu.assertErrorMsgContains('nn.Conv2d: ConvPlan:forward: weight must be 4x3x5x5', m.forward,
                              m, x)
  end)
  nn.set_conv_backend(old)
  assert(ok, err)
end

function TestConvPlan:test_backends_agree_on_a_vgg11_training_step()
  local models = require('agop.models')
  local g = agop.Generator(8)
  local x = agop.randn(g, 8, 1, 32, 32)
  local function step(backend)
    local old = nn.set_conv_backend(backend)
    local m = models.vgg11{width = 0.25, generator = agop.Generator(1)}
    m:zeroGrad()
    local y = m:forward(x)
    m:backward(x, agop.ones(y:size()))
    nn.set_conv_backend(old)
    return y:clone(), m.convs[3].gradWeight:clone(), m.convs[8].gradWeight:clone()
  end
  local a = {step('im2col')}
  local b = {step('dnnl')}
  for i = 1, 3 do
    local e = rel(b[i], a[i])
    lu.assertTrue(e < 1e-4, string.format('result %d: relative error %g', i, e))
  end
end

function TestConvPlan:test_backend_setting_is_checked()
  lu.assertErrorMsgContains("expected 'auto', 'dnnl' or 'im2col'", nn.set_conv_backend, 'gpu')
  lu.assertEquals(nn.conv_backend(), os.getenv('AGOP_CONV') or 'auto')
end

local TestConvPlanWithoutDnnl = {}

function TestConvPlanWithoutDnnl:test_a_build_without_onednn_says_so()
  local plan, msg = agop.conv2d_plan(agop.zeros(1, 1, 4, 4), agop.zeros(1, 1, 3, 3), 1, 1)
  lu.assertNil(plan)
  lu.assertStrContains(msg, 'without oneDNN')
  lu.assertErrorMsgContains('without oneDNN', nn.set_conv_backend, 'dnnl')
end

if agop.have_dnnl() then
  _G.TestConvPlan = TestConvPlan
else
  _G.TestConvPlanWithoutDnnl = TestConvPlanWithoutDnnl
end

-- A uniform input gives exactly equal outputs away from the border on the direct forward
-- (as im2col and PyTorch), so max-pooling breaks its ties the same way.
function TestConvPlan:test_direct_forward_keeps_exact_ties()
  local g = agop.Generator(9)
  local x = agop.ones(4, 64, 16, 16)
  local w = agop.randn(g, 128, 64, 3, 3)
  local plan = assert(agop.conv2d_plan(x, w, 1, 1, 'auto_direct_forward'))
  local y = plan:forward(x, w, nil)
  lu.assertNotStrContains(plan:info().forward, 'wino')
  for o = 1, 128, 17 do
    local v = y:get(2, o, 2, 2)
    for i = 2, 15 do
      for j = 2, 15 do lu.assertEquals(y:get(2, o, i, j), v) end
    end
  end
end

-- The AGOP of images with a uniform background (as MNIST's) is the same on both paths.
function TestConvPlan:test_agop_agrees_with_im2col_on_a_uniform_background()
  local models, features = require('agop.models'), require('agop.features')
  local g = agop.Generator(10)
  local x = agop.zeros(16, 1, 32, 32)
  x:narrow(3, 9, 16):narrow(4, 9, 16):copy(agop.randn(g, 16, 1, 16, 16))
  local m = models.vgg11{width = 0.5, generator = agop.Generator(2)}
  local old = nn.set_conv_backend('im2col')
  local G0 = features.agop(m, x, {batch = 16})
  nn.set_conv_backend('dnnl')
  local G1 = features.agop(m, x, {batch = 16})
  nn.set_conv_backend(old)
  for l = 1, 8 do
    local e = math.sqrt(((G1[l] - G0[l]) ^ 2):sum() / (G0[l] ^ 2):sum())
    lu.assertTrue(e < 1e-4, string.format('layer %d: relative difference %g', l, e))
  end
end
