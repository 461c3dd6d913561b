-- features: eig / matpow / corr / cosine against known answers; the AGOP fast path
-- against a brute-force per-patch Jacobian; NFM; feature maps; argument errors.
--
-- The brute force (ref_agop below) is independent of the engine and of nn's backward:
-- a plain-Lua, double-precision re-implementation of the network's forward pass, in
-- which the patch p_ij fed to ONE output position (i, j) of conv l is replaced by a given
-- vector (z_ij = W p + b there, every other position computed from the real input). The
-- gradient of every logit f_c with respect to that patch is taken by central
-- differences on each of the d patch entries (the nets are piecewise linear, so central
-- differences are exact up to rounding away from kinks), and
-- G_l = (1/n) sum_x sum_c sum_ij grad grad^T is summed in double, exactly as the README
-- ("Feature matrices") defines it. Nothing of the fast path (W^T g, S, syrk) is used.
local lu = require('luaunit')
local agop = require('agop')
local nn = require('agop.nn')
local features = require('agop.features')
local helpers = require('helpers')

local fmt = string.format

local function flat(t) return t:contiguous():reshape(t:numel()):totable() end

-- relative Frobenius distance |a - b| / |b| of two tensors (b the reference, a table or
-- tensor)
local function rel_err(a, b)
  local x = flat(a)
  local y = agop.is_tensor(b) and flat(b) or b
  local num, den = 0, 0
  for i = 1, #x do
    num = num + (x[i] - y[i]) ^ 2
    den = den + y[i] ^ 2
  end
  return math.sqrt(num / den)
end

---------------------------------------------------------------------------------------
-- a plain-Lua double forward of a network of Conv2d / ReLU / MaxPool2d / Flatten / Linear
---------------------------------------------------------------------------------------

-- Leaf modules of nested Sequentials, as specs with plain Lua (double) parameters.
local function specs_of(model)
  local out = {}
  local function visit(m)
    if m.modules then
      for _, c in ipairs(m.modules) do visit(c) end
      return
    end
    local t = nn.typename(m)
    if t == 'nn.Conv2d' then
      out[#out + 1] = {kind = 'conv', w = flat(m.weight), b = m.bias and flat(m.bias),
                       co = m.out_channels, ci = m.in_channels, k = m.kernel_size,
                       s = m.stride, p = m.padding}
    elseif t == 'nn.Linear' then
      local s = m.weight:size()
      out[#out + 1] = {kind = 'linear', w = flat(m.weight), b = m.bias and flat(m.bias),
                       nout = s[1], nin = s[2]}
    elseif t == 'nn.ReLU' then
      out[#out + 1] = {kind = 'relu'}
    elseif t == 'nn.MaxPool2d' then
      out[#out + 1] = {kind = 'maxpool', k = m.kernel_size, s = m.stride, p = m.padding}
    elseif t == 'nn.Flatten' then
      out[#out + 1] = {kind = 'flatten'}
    else
      error('specs_of: unsupported module ' .. tostring(t))
    end
  end
  visit(model)
  return out
end

-- the patch (d = ci*k*k, order c, kh, kw) of x {data, c, h, w} at output (i, j), 0-based
local function patch(sp, x, i, j)
  local p, n = {}, 0
  for c = 0, sp.ci - 1 do
    for a = 0, sp.k - 1 do
      for b = 0, sp.k - 1 do
        local y, z = i * sp.s + a - sp.p, j * sp.s + b - sp.p
        n = n + 1
        p[n] = (y >= 0 and y < x.h and z >= 0 and z < x.w) and x.data[(c * x.h + y) * x.w + z + 1]
               or 0.0
      end
    end
  end
  return p
end

local function conv_out_size(sp, x)
  return (x.h + 2 * sp.p - sp.k) // sp.s + 1, (x.w + 2 * sp.p - sp.k) // sp.s + 1
end

-- z = W p + b at every position; at position ovr.i, ovr.j the patch is ovr.patch (the
-- other positions are copied from ovr.base, this conv's output without the override)
local function conv_fwd(sp, x, ovr)
  local ho, wo = conv_out_size(sp, x)
  local d = sp.ci * sp.k * sp.k
  local out = {}
  if ovr then table.move(ovr.base, 1, #ovr.base, 1, out) end
  for i = 0, ho - 1 do
    for j = 0, wo - 1 do
      local here = ovr and ovr.i == i and ovr.j == j
      if here or not ovr then
        local p = here and ovr.patch or patch(sp, x, i, j)
        for o = 0, sp.co - 1 do
          local s = sp.b and sp.b[o + 1] or 0.0
          for r = 1, d do s = s + sp.w[o * d + r] * p[r] end
          out[(o * ho + i) * wo + j + 1] = s
        end
      end
    end
  end
  return {data = out, c = sp.co, h = ho, w = wo}
end

local function forward_from(specs, first, x, ovr)
  for li = first, #specs do
    local sp = specs[li]
    if sp.kind == 'conv' then
      x = conv_fwd(sp, x, li == first and ovr or nil)
    elseif sp.kind == 'relu' then
      local o = {}
      for i, v in ipairs(x.data) do o[i] = v > 0 and v or 0.0 end
      x = {data = o, c = x.c, h = x.h, w = x.w}
    elseif sp.kind == 'maxpool' then
      local ho = (x.h + 2 * sp.p - sp.k) // sp.s + 1
      local wo = (x.w + 2 * sp.p - sp.k) // sp.s + 1
      local o = {}
      for c = 0, x.c - 1 do
        for i = 0, ho - 1 do
          for j = 0, wo - 1 do
            local m = -math.huge
            for a = 0, sp.k - 1 do
              for b = 0, sp.k - 1 do
                local y, z = i * sp.s + a - sp.p, j * sp.s + b - sp.p
                if y >= 0 and y < x.h and z >= 0 and z < x.w then
                  m = math.max(m, x.data[(c * x.h + y) * x.w + z + 1])
                end
              end
            end
            o[(c * ho + i) * wo + j + 1] = m
          end
        end
      end
      x = {data = o, c = x.c, h = ho, w = wo}
    elseif sp.kind == 'flatten' then
      x = {data = x.data, c = #x.data, h = 1, w = 1}
    elseif sp.kind == 'linear' then
      local o = {}
      for r = 0, sp.nout - 1 do
        local s = sp.b and sp.b[r + 1] or 0.0
        for q = 1, sp.nin do s = s + sp.w[r * sp.nin + q] * x.data[q] end
        o[r + 1] = s
      end
      x = {data = o, c = sp.nout, h = 1, w = 1}
    end
  end
  return x.data
end

-- Brute-force G_l (as flat double lists, d x d) for the convs listed in `layers`
-- (indices among the model's convs), over images (N, C, H, W).
local function ref_agop(model, images, eps)
  eps = eps or 1e-5
  local specs = specs_of(model)
  local conv_at = {}
  for li, sp in ipairs(specs) do
    if sp.kind == 'conv' then conv_at[#conv_at + 1] = li end
  end
  local s = images:size()
  local n = s[1]
  local gs = {}
  for l, li in ipairs(conv_at) do
    local sp = specs[li]
    local d = sp.ci * sp.k * sp.k
    local g = {}
    for q = 1, d * d do g[q] = 0.0 end
    for b = 1, n do
      -- the real input of conv l: the double forward of the layers before it
      local x = {data = flat(images:select(1, b)), c = s[2], h = s[3], w = s[4]}
      for lj = 1, li - 1 do
        local xd = forward_from({specs[lj]}, 1, x)
        if specs[lj].kind == 'conv' then
          local ho, wo = conv_out_size(specs[lj], x)
          x = {data = xd, c = specs[lj].co, h = ho, w = wo}
        elseif specs[lj].kind == 'maxpool' then
          local sq = specs[lj]
          x = {data = xd, c = x.c, h = (x.h + 2 * sq.p - sq.k) // sq.s + 1,
               w = (x.w + 2 * sq.p - sq.k) // sq.s + 1}
        else
          x = {data = xd, c = x.c, h = x.h, w = x.w}
        end
      end
      local ho, wo = conv_out_size(sp, x)
      local base = conv_fwd(sp, x).data
      for i = 0, ho - 1 do
        for j = 0, wo - 1 do
          local p0 = patch(sp, x, i, j)
          local grads = {} -- grads[r][c] = d f_c / d p_r
          for r = 1, d do
            local pp, pm = {}, {}
            for q = 1, d do pp[q], pm[q] = p0[q], p0[q] end
            pp[r], pm[r] = p0[r] + eps, p0[r] - eps
            local fp = forward_from(specs, li, x, {i = i, j = j, patch = pp, base = base})
            local fm = forward_from(specs, li, x, {i = i, j = j, patch = pm, base = base})
            local gr = {}
            for c = 1, #fp do gr[c] = (fp[c] - fm[c]) / (2 * eps) end
            grads[r] = gr
          end
          local nc = #grads[1]
          for r = 1, d do
            for q = 1, d do
              local v = 0.0
              for c = 1, nc do v = v + grads[r][c] * grads[q][c] end
              g[(r - 1) * d + q] = g[(r - 1) * d + q] + v
            end
          end
        end
      end
    end
    for q = 1, d * d do g[q] = g[q] / n end
    gs[l] = g
  end
  return gs
end

---------------------------------------------------------------------------------------
-- tiny nets
---------------------------------------------------------------------------------------

-- Every parameter drawn N(0, 0.5) (biases non-zero, so the test sees them).
local function randomize(model, seed)
  local g = agop.Generator(seed)
  local params = model:parameters()
  for _, p in ipairs(params) do p:normal_(0, 0.5, g) end
  return model
end

local function net(spec, seed)
  local features_ = nn.Sequential()
  for _, m in ipairs(spec.features) do features_:add(m) end
  local classifier = nn.Sequential()
  for _, m in ipairs(spec.classifier) do classifier:add(m) end
  local model = nn.Sequential(features_, nn.Flatten(), classifier)
  model.features, model.classifier = features_, classifier
  model.convs = {}
  for _, m in ipairs(features_.modules) do
    if nn.typename(m) == 'nn.Conv2d' then model.convs[#model.convs + 1] = m end
  end
  return randomize(model, seed)
end

-- (stride 1, pad 1) conv, maxpool, (stride 1, pad 0) conv, linear head; input 8x8
local function net_a()
  return net({features = {nn.Conv2d(1, 3, 3, {padding = 1}), nn.ReLU(),
                          nn.MaxPool2d(2, {stride = 2}), nn.Conv2d(3, 4, 3), nn.ReLU()},
              classifier = {nn.Linear(16, 5)}}, 1), {3, 1, 8, 8}
end

-- (stride 2, pad 1) conv, (stride 1, pad 1) conv, maxpool, linear head; input 2x8x8
local function net_b()
  return net({features = {nn.Conv2d(2, 3, 3, {stride = 2, padding = 1}), nn.ReLU(),
                          nn.Conv2d(3, 4, 3, {padding = 1}), nn.ReLU(),
                          nn.MaxPool2d(2, {stride = 2})},
              classifier = {nn.Linear(16, 3)}}, 2), {2, 2, 8, 8}
end

-- (stride 1, pad 0) conv, maxpool, (stride 2, pad 1) conv with a 2-layer head; 10x10
local function net_c()
  return net({features = {nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2, {stride = 2}),
                          nn.Conv2d(2, 3, 3, {stride = 2, padding = 1}), nn.ReLU()},
              classifier = {nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 4)}}, 3), {3, 1, 10, 10}
end

local function check_against_brute_force(model, shape, opts)
  local images = agop.randn(agop.Generator(99), table.unpack(shape))
  local gs = features.agop(model, images, opts)
  local ref = ref_agop(model, images)
  lu.assertEquals(#gs, #model.convs)
  for l = 1, #gs do
    local d = model.convs[l].in_channels * model.convs[l].kernel_size ^ 2
    lu.assertEquals(gs[l]:size(), {d, d})
    local e = rel_err(gs[l], ref[l])
    if os.getenv('AGOP_TEST_VERBOSE') then print(fmt('  conv %d: rel err %.2e', l, e)) end
    if e > 1e-4 then lu.fail(fmt('conv %d: relative error %.3g against brute force', l, e)) end
  end
  return gs, images
end

TestAgop = {}

function TestAgop:test_fast_path_matches_brute_force_pad1_pad0_maxpool()
  local model, shape = net_a()
  check_against_brute_force(model, shape, {batch = 2}) -- batch 2 over 3 images
end

function TestAgop:test_fast_path_matches_brute_force_stride2_pad1()
  local model, shape = net_b()
  check_against_brute_force(model, shape)
end

function TestAgop:test_fast_path_matches_brute_force_stride2_deep_head()
  local model, shape = net_c()
  check_against_brute_force(model, shape, {batch = 3})
end

function TestAgop:test_batching_and_classes_and_layers_options()
  local model = net_a()
  local images = agop.randn(agop.Generator(5), 5, 1, 8, 8)
  local g1 = features.agop(model, images, {batch = 5})
  local g2 = features.agop(model, images, {batch = 2})
  for l = 1, 2 do lu.assertTrue(rel_err(g2[l], g1[l]) < 1e-6) end
  -- classes: the AGOP is a sum over classes
  local parts = {}
  for c = 1, 5 do parts[c] = features.agop(model, images, {classes = {c}}) end
  for l = 1, 2 do
    local sum = parts[1][l]:clone()
    for c = 2, 5 do sum:add_(parts[c][l]) end
    lu.assertTrue(rel_err(sum, g1[l]) < 1e-5)
  end
  local first2 = features.agop(model, images, {classes = 2})
  lu.assertTrue(rel_err(first2[1], parts[1][1] + parts[2][1]) < 1e-5)
  -- layers: only conv 2
  local only = features.agop(model, images, {layers = {2}})
  lu.assertNil(only[1])
  lu.assertTrue(rel_err(only[2], g1[2]) < 1e-6)
end

function TestAgop:test_power_option_squares_back_and_mode_and_grads_untouched()
  local model = net_b()
  local images = agop.randn(agop.Generator(6), 4, 2, 8, 8)
  model:zeroGrad()
  model:train()
  local gs, ps = features.agop(model, images, {power = 0.5})
  lu.assertTrue(model.training, 'training mode restored')
  lu.assertTrue(model.features.modules[1].training, 'children restored')
  local _, grads = model:parameters()
  for _, g in ipairs(grads) do lu.assertEquals(g:abs():sum(), 0) end
  for l = 1, 2 do
    lu.assertTrue(rel_err(ps[l]:mm(ps[l]), gs[l]) < 1e-4, 'G^1/2 G^1/2 = G')
  end
  model:evaluate()
  features.agop(model, images)
  lu.assertFalse(model.training, 'evaluation mode kept')
end

function TestAgop:test_agrees_with_brute_force_on_the_deep_layers_of_a_narrow_vgg11()
  local models = require('agop.models')
  local model = models.vgg11{width = 1 / 32, generator = agop.Generator(4)}
  local images = agop.randn(agop.Generator(8), 2, 1, 32, 32)
  local gs = features.agop(model, images, {layers = {7, 8}})
  -- brute force over the tail of the network only: feed conv 7's real input
  local tail = nn.Sequential()
  local seen, found = 0, false
  for _, m in ipairs(model.features.modules) do
    if nn.typename(m) == 'nn.Conv2d' then seen = seen + 1 end
    if seen >= 7 then tail:add(m); found = true end
  end
  lu.assertTrue(found)
  local head = nn.Sequential()
  for i = 1, #model.features.modules do
    if model.features.modules[i] == model.convs[7] then break end
    head:add(model.features.modules[i])
  end
  head:evaluate()
  local x7 = head:forward(images):clone()
  local sub = nn.Sequential(tail, nn.Flatten(), model.classifier)
  local ref = ref_agop(sub, x7)
  lu.assertTrue(rel_err(gs[7], ref[1]) < 1e-4, 'conv 7')
  lu.assertTrue(rel_err(gs[8], ref[2]) < 1e-4, 'conv 8')
end

-- conv 1 has d = 9 <= c_out = 12 (G^a by eigendecomposition of G), conv 2 has
-- d = 108 > c_out = 3 (G^a through the rank-c_out factorization)
local function net_wide_then_narrow()
  return net({features = {nn.Conv2d(1, 12, 3, {padding = 1}), nn.ReLU(),
                          nn.MaxPool2d(2, {stride = 2}), nn.Conv2d(12, 3, 3), nn.ReLU()},
              classifier = {nn.Linear(12, 5)}}, 7), {3, 1, 8, 8}
end

function TestAgop:test_third_result_is_the_factor_s_over_n_and_expand_rebuilds_g_exactly()
  local model, shape = net_wide_then_narrow()
  local images = agop.randn(agop.Generator(11), table.unpack(shape)) -- n = 3: S / n rounds
  local gs, ps, ss = features.agop(model, images, {power = 0.5})
  lu.assertEquals(#ss, 2)
  for l, conv in ipairs(model.convs) do
    local co, d = conv.out_channels, conv.in_channels * conv.kernel_size ^ 2
    lu.assertEquals(ss[l]:size(), {co, co})
    lu.assertTrue(ss[l]:equal(ss[l]:t():contiguous()), 'S / n is exactly symmetric')
    -- G = W^T (S / n) W, summed here in plain Lua doubles from the factor
    local w, sf = flat(conv.weight), flat(ss[l])
    local ref = {}
    for i = 1, d do
      for j = 1, d do
        local acc = 0
        for a = 1, co do
          local wa = w[(a - 1) * d + i]
          for b = 1, co do acc = acc + wa * sf[(a - 1) * co + b] * w[(b - 1) * d + j] end
        end
        ref[(i - 1) * d + j] = acc
      end
    end
    local e = rel_err(gs[l], ref)
    if e > 1e-6 then lu.fail(fmt('conv %d: G vs W^T S W from the factor: %.3g', l, e)) end
    -- and the factor rebuilds G and G^1/2 bit for bit (same process, same threads)
    lu.assertTrue(features.agop_expand(ss[l], conv):equal(gs[l]), 'conv ' .. l .. ': G')
    lu.assertTrue(features.agop_expand(ss[l], conv.weight, 0.5):equal(ps[l]),
                  'conv ' .. l .. ': G^1/2')
    -- a weight given as (c_out, d) is the same layer
    lu.assertTrue(features.agop_expand(ss[l], conv.weight:view(co, d)):equal(gs[l]))
  end
  -- without power: no second result, the factors still come third
  local g2, p2, s2 = features.agop(model, images, {layers = {2}})
  lu.assertNil(p2)
  lu.assertNil(s2[1])
  lu.assertTrue(s2[2]:equal(ss[2]))
  lu.assertTrue(g2[2]:equal(gs[2]))
end

-- the sweep's fused walk back through ReLU then max-pooling: the same numbers as the two
-- modules' own backward, with zeros, negative values and exact ties in the input, for
-- VGG's 2x2 windows (one pass) and others (scatter), and for stacked gradients
local function unpool_relu_case(x, pool, k)
  local g = agop.Generator(22)
  local relu = nn.ReLU()
  local y = relu:forward(x)
  local p = pool:forward(y)
  local b = x:size(1)
  local gy = agop.randn(g, k * b, p:size(2), p:size(3), p:size(4))
  local got = agop.agop_unpool_relu(pool.indices, p, gy, x:size(3), x:size(4))
  lu.assertEquals(got:size(), {k * b, x:size(2), x:size(3), x:size(4)})
  for i = 1, k do
    local gyi = gy:narrow(1, (i - 1) * b + 1, b)
    local want = relu:updateGradInput(x, pool:updateGradInput(y, gyi))
    lu.assertEquals((got:narrow(1, (i - 1) * b + 1, b) - want):abs():max(), 0)
  end
  lu.assertTrue(got:abs():max() > 0)
  return got, y, p, gy
end

function TestAgop:test_unpool_relu_equals_maxpool_then_relu_backward()
  local x = agop.randn(agop.Generator(21), 3, 4, 8, 6)
  x:narrow(1, 2, 1):fill(0.5) -- a uniform image: every window is a tie
  x:narrow(2, 3, 1):fill(-1)   -- a dead channel: every gradient is masked
  local pool = nn.MaxPool2d(2)
  local got, y, p, gy = unpool_relu_case(x, pool, 1)
  unpool_relu_case(x, pool, 3) -- three stacked gradients of the same images
  unpool_relu_case(x, nn.MaxPool2d(3, {stride = 2, padding = 1}), 2) -- overlapping windows
  unpool_relu_case(agop.randn(agop.Generator(23), 2, 3, 7, 9), nn.MaxPool2d(2), 1) -- odd sizes
  -- the output buffer is refilled, not reallocated
  local again = agop.agop_unpool_relu(pool.indices, p, gy, 8, 6, got)
  lu.assertTrue(rawequal(again, got))
  lu.assertErrorMsgContains('(k B, C, Ho, Wo)', agop.agop_unpool_relu, pool.indices, p,
                            gy:narrow(1, 1, 2), 8, 6)
  lu.assertErrorMsgContains('the output buffer is one of the inputs', agop.agop_unpool_relu,
                            pool.indices, p, gy, 4, 3, gy)
  lu.assertErrorMsgContains('input height', agop.agop_unpool_relu, pool.indices, p, gy, 0, 6)
  local bad = pool.indices:clone()
  bad:fill(48)
  lu.assertErrorMsgContains('not a pixel', agop.agop_unpool_relu, bad, p, gy, 8, 6)
  bad:fill(7) -- a pixel, but outside most windows: the general path, no error
  local r = agop.agop_unpool_relu(bad, p, gy, 8, 6)
  lu.assertEquals(r:narrow(3, 1, 1):narrow(4, 2, 5):abs():max(), 0)
  -- ReLU alone, stacked
  local g2 = agop.randn(agop.Generator(24), 6, 4, 8, 6)
  local want = g2:clone()
  for i = 0, 1 do
    want:narrow(1, 3 * i + 1, 3):copy(agop.relu_backward(y, g2:narrow(1, 3 * i + 1, 3)))
  end
  lu.assertTrue(rawequal(agop.agop_relu_mask(y, g2), g2))
  lu.assertEquals((g2 - want):abs():max(), 0)
  lu.assertErrorMsgContains('(k B, ...)', agop.agop_relu_mask, y, g2:narrow(1, 1, 4))
end

-- S of a conv followed by ReLU and max-pooling, from the pool's side: the same as
-- accumulating the gradient that agop_unpool_relu forms (to float rounding), or false
-- (S unchanged) where the engine has no kernel for the shape
function TestAgop:test_accumulate_pooled_equals_accumulate_of_the_unpooled_gradient()
  local g = agop.Generator(25)
  local function eye(n)
    local t = agop.zeros(n, n)
    for i = 1, n do t:set(i, i, 1) end
    return t
  end
  local ran = 0
  for _, sz in ipairs{{3, 64, 32, 32}, {5, 37, 8, 8}, {2, 20, 16, 8}, {4, 16, 4, 4}} do
    local x = agop.randn(g, table.unpack(sz))
    x:narrow(1, 1, 1):fill(0.25) -- ties everywhere in the first image
    x:narrow(2, 2, 1):fill(-1)   -- a dead channel
    local relu, pool = nn.ReLU(), nn.MaxPool2d(2)
    local y = relu:forward(x)
    local p = pool:forward(y)
    local gy = agop.randn(g, table.unpack(p:size()))
    local s1, s2 = agop.dmatrix(sz[2]), agop.dmatrix(sz[2])
    s1:add(eye(sz[2]))
    s2:add(eye(sz[2]))
    local done = agop.agop_accumulate_pooled(s1, pool.indices, p, gy)
    agop.agop_accumulate(s2, agop.agop_unpool_relu(pool.indices, p, gy, sz[3], sz[4]))
    local a, b = s1:tensor(), s2:tensor()
    if done then
      ran = ran + 1
      lu.assertTrue((a - b):abs():max() <= 1e-6 * b:abs():max())
      lu.assertEquals((a - a:t()):abs():max(), 0)
    else
      lu.assertEquals((a - eye(sz[2])):abs():max(), 0) -- untouched
    end
  end
  local _, isa = agop.fma_peak(1, 0.001)
  if isa == 'AVX-512' then lu.assertEquals(ran, 3) end -- the kernel ran where it exists
  local s, idx = agop.dmatrix(3), agop.zeros(1, 3, 4, 4)
  lu.assertErrorMsgContains('differ', agop.agop_accumulate_pooled, s, idx, idx,
                            agop.zeros(1, 3, 4, 8))
  lu.assertErrorMsgContains('3 channels', agop.agop_accumulate_pooled, agop.dmatrix(4), idx,
                            idx, idx)
  local nan = agop.full(0 / 0, 1, 3, 4, 4)
  local ok, err = pcall(agop.agop_accumulate_pooled, s, idx, agop.ones(1, 3, 4, 4), nan)
  if not ok then lu.assertStrContains(err, 'non-finite') end
  lu.assertEquals(s:get(1, 1), 0)
end

function TestAgop:test_agop_expand_argument_errors()
  local model = net_a()                                -- conv 1: 3 x 1 x 3 x 3
  local conv = model.convs[1]
  local s = agop.tensor{{2, 1, 0}, {1, 2, 0}, {0, 0, 1}}
  local E = 'features.agop_expand: '
  helpers.errors_with(E .. 'S is 4x4, expected 3x3 (the weight 3x1x3x3 has 3 output channels)',
                      features.agop_expand, agop.zeros(4, 4), conv)
  helpers.errors_with(E .. 'S is 9, expected 3x3', features.agop_expand, agop.zeros(9), conv)
  helpers.errors_with(E .. 'S must be a 3x3 tensor, got table', features.agop_expand, {}, conv)
  helpers.errors_with(E .. 'expected an nn.Conv2d or a weight tensor, got nn.ReLU',
                      features.agop_expand, s, nn.ReLU())
  helpers.errors_with(E .. 'weight must be (c_out, c_in, k, k) or (c_out, d), got 3',
                      features.agop_expand, s, agop.zeros(3))
  helpers.errors_with(E .. 'power must be nil or a finite number > 0, got 0',
                      features.agop_expand, s, conv, 0)
  helpers.errors_with(E .. 'power must be', features.agop_expand, s, conv, 'half')
  local asym = s:clone()
  asym:set(1, 3, 1)
  -- finiteness and symmetry are checked once, by the binding; agop_expand adds its name
  helpers.errors_with(E .. 'agop_finish: S 3x3 is not symmetric (max |a_ij - a_ji| / max |a| '
                      .. '= 0.5 > 0.0001)', features.agop_expand, asym, conv)
  helpers.errors_with(E .. 'agop_pow: S 3x3 is not symmetric', features.agop_expand, asym,
                      conv, 0.5)
  local nan = s:clone()
  nan:set(2, 2, 0 / 0)
  helpers.errors_with(E .. 'agop_finish: S (3x3) has a non-finite entry at offset 4',
                      features.agop_expand, nan, conv)
  helpers.errors_with(E .. 'agop_pow: S (3x3) has a non-finite entry', features.agop_expand,
                      nan, conv, 2)
  -- within the tolerance (relative 1e-4 of the largest entry) S passes
  local near = s:clone()
  near:set(1, 2, 1 + 1e-5)
  lu.assertEquals(features.agop_expand(near, conv):size(), {9, 9})
  -- the error points at the caller, the binding's too
  local ok, err = pcall(function() features.agop_expand(agop.zeros(2, 2), conv) end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, 'test_features.lua:')
  ok, err = pcall(function() features.agop_expand(asym, conv) end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, 'test_features.lua:')
  lu.assertStrContains(err, ': features.agop_expand: agop_finish: S 3x3 is not symmetric')
end

-- agop_finish / agop_pow take S as a DMatrix or as a float tensor; the tensor is checked
-- (square, finite, symmetric) and added exactly, so both give the same bits
function TestAgop:test_finish_takes_a_symmetric_tensor()
  local g = agop.Generator(4)
  local a = agop.randn(g, 5, 5)
  local s = agop.mm(a, a:t())
  s = (s + s:t()) * 0.5 -- exactly symmetric
  local w = agop.randn(g, 5, 2, 3, 3)
  local acc = agop.dmatrix(5):add(s)
  lu.assertTrue(agop.agop_finish(s, w, 3):equal(agop.agop_finish(acc, w, 3)))
  lu.assertTrue(agop.agop_pow(s, w, 3, 0.5):equal(agop.agop_pow(acc, w, 3, 0.5)))
  lu.assertEquals(s:size(), {5, 5}) -- the argument is left as it was
  local asym = s:clone()
  asym:set(1, 2, asym:get(1, 2) + 1)
  lu.assertErrorMsgContains('agop_finish: S 5x5 is not symmetric', agop.agop_finish, asym, w, 1)
  lu.assertErrorMsgContains('agop_pow: S 5x5 is not symmetric', agop.agop_pow, asym, w, 1, 2)
  lu.assertErrorMsgContains('agop_finish: S must be a non-empty square matrix, got 5x4',
                            agop.agop_finish, agop.zeros(5, 4), w, 1)
  lu.assertErrorMsgContains('agop_finish: S (5x5) has a non-finite entry at offset 0',
                            agop.agop_finish, agop.full(1 / 0, 5, 5), w, 1)
  lu.assertErrorMsgContains('agop_finish: weight 5x2x3x3 has 5 output channels, the '
                            .. 'accumulator is 4x4', agop.agop_finish, agop.ones(4, 4), w, 1)
  -- eig and matpow name their argument as before
  lu.assertErrorMsgContains('eig: matrix 5x5 is not symmetric', agop.eig, asym)
end

function TestAgop:test_errors()
  local model = net_a()
  lu.assertErrorMsgContains("unknown option 'btch'", features.agop, model,
                            agop.randn(1, 1, 8, 8), {btch = 2})
  lu.assertErrorMsgContains('images must be a tensor', features.agop, model, 3)
  lu.assertErrorMsgContains('classes must be', features.agop, model, agop.randn(1, 1, 8, 8),
                            {classes = 9})
  lu.assertErrorMsgContains('features.agop: ', features.agop, model, agop.randn(1, 2, 8, 8))
  lu.assertErrorMsgContains('power must be', features.agop, model, agop.randn(1, 1, 8, 8),
                            {power = -1})
  -- the binding's own checks
  local s = agop.dmatrix(3)
  lu.assertErrorMsgContains('3 channels', agop.agop_accumulate, agop.dmatrix(4),
                            agop.zeros(1, 3, 2, 2))
  lu.assertErrorMsgContains('non-finite', agop.agop_accumulate, s,
                            agop.full(0 / 0, 1, 3, 2, 2))
  lu.assertErrorMsgContains('agop.DMatrix', agop.agop_accumulate, agop.zeros(3, 3),
                            agop.zeros(1, 3, 2, 2))
  lu.assertErrorMsgContains('output channels', agop.agop_finish, s, agop.zeros(4, 1, 3, 3), 1)
  lu.assertErrorMsgContains('number of images', agop.agop_finish, s, agop.zeros(3, 1, 3, 3), 0)
  lu.assertErrorMsgContains('exponent', agop.agop_pow, s, agop.zeros(3, 1, 3, 3), 1, 0)
end

---------------------------------------------------------------------------------------
-- NFM, eig, matpow, corr, cosine, feature maps
---------------------------------------------------------------------------------------

TestFeatures = {}

function TestFeatures:test_feature_map_through_model_matches_naive()
  local model = net_a()
  local image = agop.randn(agop.Generator(3), 1, 8, 8)
  local m = agop.randn(agop.Generator(4), 27, 27)
  local map = features.feature_map(m, image, model, 2)
  -- conv 2's input: conv1 -> relu -> maxpool of the image, then |M p| per stride-1 patch
  model:evaluate()
  local x = model.features.modules[3]:forward(model.features.modules[2]:forward(
    model.features.modules[1]:forward(image:reshape(1, 1, 8, 8))))
  model:train()
  local xd = {data = flat(x), c = 3, h = 4, w = 4}
  local sp = {ci = 3, k = 3, s = 1, p = 0}
  local mm = flat(m)
  local vals, lo, hi = {}, math.huge, -math.huge
  for i = 0, 1 do
    for j = 0, 1 do
      local p = patch(sp, xd, i, j)
      local nrm = 0
      for r = 0, 26 do
        local s = 0
        for q = 1, 27 do s = s + mm[r * 27 + q] * p[q] end
        nrm = nrm + s * s
      end
      vals[#vals + 1] = math.sqrt(nrm)
      lo, hi = math.min(lo, vals[#vals]), math.max(hi, vals[#vals])
    end
  end
  lu.assertEquals(map:size(), {2, 2})
  local got = flat(map)
  for q = 1, 4 do lu.assertAlmostEquals(got[q], (vals[q] - lo) / (hi - lo), 1e-5) end
  lu.assertTrue(model.training)
  -- layer 1 with padding 1: same size as the image, in [0, 1]
  local m1 = features.feature_map(features.nfm(model.convs[1]), image, model, 1)
  lu.assertEquals(m1:size(), {8, 8})
  lu.assertEquals(m1:max(), 1)
  lu.assertEquals(m1:min(), 0)
  lu.assertErrorMsgContains('does not match', agop.feature_map, agop.zeros(5, 5), image, 3, 1)
  lu.assertErrorMsgContains('no conv layer 3', features.feature_map, m, image, model, 3)
end
