-- optim: SGD / Adam / AdamW steps against values computed by hand (in double, in Lua),
-- state save / load, learning-rate schedules.
local lu = require('luaunit')
local agop = require('agop')
local optim = require('agop.optim')

local function close(t, want, tol, what)
  local v = t:totable()
  lu.assertEquals(#v, #want, what)
  for i = 1, #want do
    if math.abs(v[i] - want[i]) > (tol or 1e-6) * math.max(1, math.abs(want[i])) then
      lu.fail(string.format('%s: entry %d is %.8g, expected %.8g', what, i, v[i], want[i]))
    end
  end
end

local P0 = {1.0, -2.0, 0.5, 3.0}
local G = {{0.1, -0.4, 2.0, 0.0}, {-0.3, 0.2, 1.0, 0.5}, {0.05, 0.05, -1.0, 2.0}}

-- Reference SGD in double (PyTorch's rule).
local function sgd_ref(o)
  local p, buf = {table.unpack(P0)}, nil
  for t = 1, #G do
    local g = {}
    for i = 1, #p do g[i] = G[t][i] + (o.weight_decay or 0) * p[i] end
    if (o.momentum or 0) ~= 0 then
      if not buf then
        buf = {table.unpack(g)}
      else
        for i = 1, #p do
          buf[i] = o.momentum * buf[i] + (1 - (o.dampening or 0)) * g[i]
        end
      end
      for i = 1, #p do g[i] = o.nesterov and g[i] + o.momentum * buf[i] or buf[i] end
    end
    for i = 1, #p do p[i] = p[i] - o.lr * g[i] end
  end
  return p
end

local function run(opt)
  local p, g = agop.tensor(P0), agop.zeros(#P0)
  for t = 1, #G do
    g:copy(agop.tensor(G[t]))
    opt:step(p, g)
  end
  return p, g
end

TestSGD = {}

function TestSGD:test_plain_step_by_hand()
  local p = run(optim.SGD{lr = 0.1})
  -- p - 0.1 * (g1 + g2 + g3)
  close(p, {1 - 0.1 * (-0.15), -2 - 0.1 * (-0.15), 0.5 - 0.1 * 2.0, 3 - 0.1 * 2.5}, 1e-6,
        'plain')
end

function TestSGD:test_momentum_nesterov_weight_decay_dampening()
  for _, o in ipairs({{lr = 0.1, momentum = 0.9}, {lr = 0.05, momentum = 0.8, nesterov = true},
                      {lr = 0.1, momentum = 0.9, weight_decay = 0.01},
                      {lr = 0.2, weight_decay = 0.1},
                      {lr = 0.1, momentum = 0.5, dampening = 0.3}}) do
    local p = run(optim.SGD(o))
    close(p, sgd_ref(o), 1e-6, 'SGD ' .. tostring(optim.SGD(o)))
  end
end

function TestSGD:test_grads_are_left_untouched()
  local p, g = run(optim.SGD{lr = 0.1, momentum = 0.9, weight_decay = 0.5, nesterov = true})
  close(g, G[#G], 1e-7, 'grads')
  lu.assertEquals(p:numel(), 4)
end

-- The tensor-op SGD that agop.sgd_step replaced (one op per line of PyTorch's rule): the
-- fused step must give the same floats, bit for bit, so that runs stay reproducible.
local function sgd_by_tensor_ops(o, p, grads, bufs, scratch)
  local g = grads
  if (o.weight_decay or 0) ~= 0 then g = scratch:copy(grads):add_(p, o.weight_decay) end
  if (o.momentum or 0) ~= 0 then
    if bufs.m == nil then
      bufs.m = grads:clone():copy(g)
    else
      bufs.m:mul_(o.momentum):add_(g, 1 - (o.dampening or 0))
    end
    if o.nesterov then
      if g == grads then g = scratch:copy(grads) end
      g:add_(bufs.m, o.momentum)
    else
      g = bufs.m
    end
  end
  p:add_(g, -o.lr)
end

function TestSGD:test_fused_step_matches_tensor_ops_bit_for_bit()
  local gen = agop.Generator(7)
  local n = 100003 -- past the threading threshold, and not a multiple of a vector
  for _, o in ipairs({{lr = 0.1}, {lr = 0.01, momentum = 0.9},
                      {lr = 0.03, momentum = 0.9, weight_decay = 5e-4},
                      {lr = 0.05, momentum = 0.8, nesterov = true, weight_decay = 0.1},
                      {lr = 0.1, momentum = 0.5, dampening = 1 / 3},
                      {lr = 0.07, weight_decay = 0.01}}) do
    local p0 = agop.randn(gen, n)
    -- zeros of both signs and tiny numbers whose products underflow: the sign of every
    -- zero must match too
    p0:narrow(1, 1, 500):fill(-0.0)
    p0:narrow(1, 501, 500):fill(1e-40)
    local p1, p2 = p0:clone(), p0:clone()
    local ref_bufs, scratch = {}, agop.zeros(n)
    local opt = optim.SGD(o)
    for _ = 1, 4 do
      local g = agop.randn(gen, n)
      g:narrow(1, 1, 250):fill(-0.0)
      g:narrow(1, 251, 250):fill(-1e-40)
      sgd_by_tensor_ops(o, p1, g, ref_bufs, scratch)
      opt:step(p2, g)
    end
    local what = tostring(opt)
    lu.assertTrue(p2:equal(p1), what .. ': params differ from the tensor ops')
    if ref_bufs.m then
      lu.assertTrue(opt.buffers.momentum:equal(ref_bufs.m), what .. ': momentum differs')
    end
    -- and bit for bit: equal() says -0 == 0; compare the signs of the zeros
    local a, b = p1:totable(), p2:totable()
    for i = 1, 1000 do
      if a[i] == 0 and 1 / a[i] ~= 1 / b[i] then
        lu.fail(string.format('%s: entry %d is %g, expected %g', what, i, 1 / b[i], 1 / a[i]))
      end
    end
  end
end

function TestSGD:test_sgd_step_checks_its_arguments()
  local p, g, b = agop.zeros(4), agop.zeros(4), agop.zeros(4)
  lu.assertErrorMsgContains('grads have 3 elements, params 4', agop.sgd_step, p,
                            agop.zeros(3), b, 0.1, 0.9, 0, 0, false, false)
  lu.assertErrorMsgContains('momentum buffer has 5 elements', agop.sgd_step, p, g,
                            agop.zeros(5), 0.1, 0.9, 0, 0, false, false)
  lu.assertErrorMsgContains('needs a momentum buffer', agop.sgd_step, p, g, nil, 0.1, 0.9, 0,
                            0, false, false)
  lu.assertErrorMsgContains('must be contiguous', agop.sgd_step, agop.zeros(4, 2):t(),
                            agop.zeros(8), nil, 0.1, 0, 0, 0, false, false)
  lu.assertErrorMsgContains('lr', agop.sgd_step, p, g, b, 0 / 0, 0.9, 0, 0, false, false)
  lu.assertErrorMsgContains('must be booleans', agop.sgd_step, p, g, b, 0.1, 0.9, 0, 0, 1,
                            false)
  lu.assertErrorMsgContains('agop.Tensor expected', agop.sgd_step, {}, g, b, 0.1, 0.9, 0, 0,
                            false, false)
end

function TestSGD:test_errors()
  lu.assertErrorMsgContains("option 'lr' is required", optim.SGD, {momentum = 0.9})
  lu.assertErrorMsgContains("unknown option 'momentun' (did you mean 'momentum'?)", optim.SGD,
                            {lr = 0.1, momentun = 0.9})
  lu.assertErrorMsgContains('nesterov needs momentum', optim.SGD, {lr = 0.1, nesterov = true})
  lu.assertErrorMsgContains('momentum must be a number in [0, 1)', optim.SGD,
                            {lr = 0.1, momentum = 1})
  local o = optim.SGD{lr = 0.1, momentum = 0.9}
  lu.assertErrorMsgContains('params have 3 elements but grads 4', o.step, o, agop.zeros(3),
                            agop.zeros(4))
  lu.assertErrorMsgContains('flat params and grads tensors', o.step, o, {agop.zeros(3)},
                            {agop.zeros(3)})
  o:step(agop.zeros(3), agop.ones(3))
  lu.assertErrorMsgContains('a different model?', o.step, o, agop.zeros(4), agop.zeros(4))
end

TestAdam = {}

local function adam_ref(o)
  local lr, b1, b2, eps, wd = o.lr, o.betas[1], o.betas[2], o.eps, o.weight_decay
  local p, m, v = {table.unpack(P0)}, {0, 0, 0, 0}, {0, 0, 0, 0}
  for t = 1, #G do
    for i = 1, #p do
      local g = G[t][i]
      if o.decoupled then p[i] = p[i] * (1 - lr * wd) else g = g + wd * p[i] end
      m[i] = b1 * m[i] + (1 - b1) * g
      v[i] = b2 * v[i] + (1 - b2) * g * g
      local mh, vh = m[i] / (1 - b1 ^ t), v[i] / (1 - b2 ^ t)
      p[i] = p[i] - lr * mh / (math.sqrt(vh) + eps)
    end
  end
  return p
end

function TestAdam:test_steps_by_hand()
  local cases = {
    {lr = 0.1, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0},
    {lr = 0.01, betas = {0.5, 0.9}, eps = 1e-3, weight_decay = 0.1},
  }
  for _, o in ipairs(cases) do
    close(run(optim.Adam{lr = o.lr, betas = o.betas, eps = o.eps,
                         weight_decay = o.weight_decay}), adam_ref(o), 1e-5, 'Adam')
  end
  -- first step of Adam moves every entry with a nonzero gradient by about lr
  local p = run(optim.Adam{lr = 0.1})
  lu.assertTrue(math.abs(p:get(1) - P0[1]) < 0.3 + 1e-6)
end

function TestAdam:test_adamw_decoupled_decay()
  local o = {lr = 0.05, betas = {0.9, 0.99}, eps = 1e-8, weight_decay = 0.2, decoupled = true}
  close(run(optim.AdamW{lr = o.lr, betas = o.betas, eps = o.eps,
                        weight_decay = o.weight_decay}), adam_ref(o), 1e-5, 'AdamW')
end

function TestAdam:test_errors()
  lu.assertErrorMsgContains('betas must be a list of two numbers', optim.Adam, {betas = 0.9})
  lu.assertErrorMsgContains('eps must be a number in (0', optim.Adam, {eps = 0})
  lu.assertErrorMsgContains("unknown option 'beta' (did you mean 'betas'?)", optim.Adam,
                            {beta = {0.9, 0.99}})
end

TestOptimState = {}

-- Three steps straight, or one step, save, load into a fresh optimizer, two more steps:
-- the same parameters.
function TestOptimState:test_state_round_trip_resumes_exactly()
  for _, make in ipairs({function() return optim.SGD{lr = 0.1, momentum = 0.9} end,
                         function() return optim.Adam{lr = 0.05} end}) do
    local straight = run(make())
    local a = make()
    local p, g = agop.tensor(P0), agop.zeros(4)
    g:copy(agop.tensor(G[1]))
    a:step(p, g)
    local s = a:state()
    lu.assertEquals(s.step, 1)
    local b = make():load_state(s)
    for t = 2, #G do
      g:copy(agop.tensor(G[t]))
      b:step(p, g)
    end
    lu.assertTrue(p:equal(straight), a.kind .. ' resumed run differs')
    -- the saved state is a copy: later steps do not change it
    local before = s.buffers[a.kind == 'SGD' and 'momentum' or 'exp_avg']:clone()
    a:step(p, g)
    lu.assertTrue(s.buffers[a.kind == 'SGD' and 'momentum' or 'exp_avg']:equal(before))
  end
  local sgd = optim.SGD{lr = 0.1}
  lu.assertErrorMsgContains('state is for Adam, not SGD', sgd.load_state, sgd,
                            optim.Adam{}:state())
end

TestSchedules = {}

function TestSchedules:test_step_schedule()
  local s = optim.schedule.step{every = 10, gamma = 0.5}
  lu.assertEquals(s:lr(0, 0.8), 0.8)
  lu.assertEquals(s:lr(9, 0.8), 0.8)
  lu.assertEquals(s:lr(10, 0.8), 0.4)
  lu.assertEquals(s(25, 0.8), 0.2)
  lu.assertErrorMsgContains("option 'every' is required", optim.schedule.step, {gamma = 0.5})
  lu.assertErrorMsgContains('no base lr', s.lr, s, 3)
end

function TestSchedules:test_cosine_with_warmup()
  local s = optim.schedule.cosine{total = 110, warmup = 10, min_lr = 0.01, lr = 1}
  lu.assertAlmostEquals(s:lr(0), 1 / 10, 1e-12) -- the first warmup step: base / warmup
  lu.assertAlmostEquals(s:lr(4), 5 / 10, 1e-12)
  lu.assertAlmostEquals(s:lr(10), 1, 1e-12)
  lu.assertAlmostEquals(s:lr(60), 0.01 + 0.99 * 0.5, 1e-12)
  lu.assertAlmostEquals(s:lr(110), 0.01, 1e-12)
  lu.assertAlmostEquals(s:lr(500), 0.01, 1e-12)
  lu.assertErrorMsgContains('warmup 20 is longer than total 10', optim.schedule.cosine,
                            {total = 10, warmup = 20})
end

function TestSchedules:test_optimizer_follows_its_schedule()
  local o = optim.SGD{lr = 1, schedule = optim.schedule.step{every = 1, gamma = 0.5}}
  local p, g = agop.zeros(1), agop.ones(1)
  lu.assertEquals(o:step(p, g), 1)
  lu.assertEquals(o:step(p, g), 0.5)
  lu.assertEquals(o:step(p, g), 0.25)
  lu.assertAlmostEquals(p:get(1), -1.75, 1e-6)
  -- a plain function(step, base) works as a schedule
  local f = optim.SGD{lr = 2, schedule = function(step, base) return base / (step + 1) end}
  lu.assertEquals(f:step(p, g), 2)
  lu.assertEquals(f:step(p, g), 1)
  lu.assertEquals(f:get_lr(), 2 / 3)
  -- constant with warmup
  local c = optim.schedule.constant{warmup = 4}
  lu.assertEquals(c:lr(1, 2), 1)
  lu.assertEquals(c:lr(7, 2), 2)
end

-- a state is checked whole before any of it is applied: a bad one changes nothing
function TestOptimState:test_load_state_checks_every_buffer_and_changes_nothing_on_error()
  local p, g = agop.rand(agop.Generator(1), 6), agop.rand(agop.Generator(2), 6)
  local sgd = optim.SGD{lr = 0.1, momentum = 0.9}
  sgd:step(p, g)
  local good = sgd:state()
  local function same_as_before()
    lu.assertEquals(sgd.t, 1)
    lu.assertTrue(sgd.buffers.momentum:equal(good.buffers.momentum))
  end
  local cases = {
    {{kind = 'SGD', step = 3, buffers = {}}, 'the momentum buffer is missing'},
    {{kind = 'SGD', step = 1.5, buffers = good.buffers}, 'step must be an integer >= 0'},
    {{kind = 'SGD', step = -1, buffers = good.buffers}, 'step must be an integer >= 0'},
    {{kind = 'SGD', step = 1 / 0, buffers = good.buffers}, 'step must be an integer >= 0'},
    {{kind = 'SGD', step = 3, buffers = {momentum = agop.zeros(5)}}, 'has 5 elements, the parameters 6'},
    {{kind = 'SGD', step = 3, buffers = {momentum = agop.full(0 / 0, 6)}}, 'holds NaN or Inf'},
    {{kind = 'SGD', step = 3, buffers = {momentum = agop.zeros(6), exp_avg = agop.zeros(6)}},
      'unexpected buffer exp_avg'},
  }
  for _, c in ipairs(cases) do
    lu.assertErrorMsgContains(c[2], sgd.load_state, sgd, c[1], 6)
    same_as_before()
  end
  local adam = optim.Adam{}
  lu.assertErrorMsgContains('the exp_avg_sq buffer is missing', adam.load_state, adam,
    {kind = 'Adam', step = 2, buffers = {exp_avg = agop.zeros(6)}})
  lu.assertEquals(adam.t, 0)
  -- a state before any step needs no buffer
  lu.assertEquals(optim.SGD{lr = 1, momentum = 0.5}:load_state{kind = 'SGD', step = 0}.t, 0)
end
