-- agop.optim - optimizers over flat (params, grads) tensors, and learning-rate schedules.
--
--   local params, grads = model:flatten_parameters()
--   local opt = optim.SGD{lr = 0.05, momentum = 0.9, weight_decay = 5e-4,
--                         schedule = optim.schedule.cosine{total = 1000, warmup = 50}}
--   for step = 1, 1000 do
--     model:zeroGrad(); ...forward / backward...
--     opt:step(params, grads)              -- updates params in place
--   end
--   local s = opt:state()                  -- step count and buffers, for checkpoints
--   opt2:load_state(s)
--
-- The update rules are PyTorch's (torch.optim.SGD, Adam, AdamW), so runs are comparable.
local agop = require('agop')
local check = require('agop.check')
local util = require('agop.util')

local optim = {}
local fmt = string.format

local check_number = check.number

---------------------------------------------------------------------------------------
-- schedules: objects with :lr(step [, base]) -> lr, also callable as sched(step, base).
-- `step` counts the optimizer steps already taken (0 for the first). `base` is the
-- schedule's own lr option or, when it has none, the optimizer's lr. Every schedule
-- takes `warmup = n`: the lr ramps linearly from base/n to base over the first n steps.
---------------------------------------------------------------------------------------

optim.schedule = {}

local Schedule = {}
Schedule.__index = Schedule
Schedule.__call = function(self, step, base) return self:lr(step, base) end

local function make_schedule(kind, who, opt, defaults, f)
  defaults.lr = false
  defaults.warmup = 0
  opt = util.options(opt, defaults, who)
  if opt.lr then check_number(who, 'lr', opt.lr, 0, math.huge) end
  if type(opt.warmup) ~= 'number' or opt.warmup < 0 or opt.warmup ~= math.floor(opt.warmup)
  then
    error(fmt('%s: warmup must be a whole number of steps, got %s', who,
              tostring(opt.warmup)), 0)
  end
  local s = setmetatable({kind = kind, opt = opt, f = f, who = who}, Schedule)
  return s
end

function Schedule:lr(step, base)
  base = self.opt.lr or base
  if type(base) ~= 'number' then
    error(self.who .. ': no base lr (give the schedule lr = ... or attach it to an optimizer)',
          2)
  end
  if type(step) ~= 'number' or step < 0 then
    error(fmt('%s: step must be a number >= 0, got %s', self.who, tostring(step)), 0)
  end
  local w = self.opt.warmup
  local lr = self.f(self.opt, step, base)
  if w > 0 and step < w then lr = lr * (step + 1) / w end
  return lr
end

function Schedule:__tostring()
  local keys = {}
  for k, v in pairs(self.opt) do
    if v ~= false then keys[#keys + 1] = fmt('%s=%s', k, tostring(v)) end
  end
  table.sort(keys)
  return fmt('optim.schedule.%s{%s}', self.kind, table.concat(keys, ', '))
end

-- The base lr throughout (only useful with warmup).
function optim.schedule.constant(opt)
  return make_schedule('constant', 'optim.schedule.constant', opt, {},
                       function(_, _, base) return base end)
end

-- lr = base * gamma ^ floor(step / every)
function optim.schedule.step(opt)
  local who = 'optim.schedule.step'
  local s = make_schedule('step', who, opt, {every = util.REQUIRED, gamma = 0.1},
                          function(o, step, base)
                            return base * o.gamma ^ math.floor(step / o.every)
                          end)
  local o = s.opt
  if type(o.every) ~= 'number' or o.every < 1 or o.every ~= math.floor(o.every) then
    error(fmt('%s: every must be a whole number of steps >= 1, got %s', who,
              tostring(o.every)), 0)
  end
  check_number(who, 'gamma', o.gamma, 0, math.huge)
  return s
end

-- Cosine annealing from base to min_lr over `total` steps (warmup included: the cosine
-- runs over steps warmup .. total), then min_lr.
function optim.schedule.cosine(opt)
  local who = 'optim.schedule.cosine'
  local s = make_schedule('cosine', who, opt, {total = util.REQUIRED, min_lr = 0},
                          function(o, step, base)
                            local span = o.total - o.warmup
                            local t = math.min(math.max(step - o.warmup, 0), span)
                            local c = span > 0 and (1 + math.cos(math.pi * t / span)) / 2 or 0
                            return o.min_lr + (base - o.min_lr) * c
                          end)
  local o = s.opt
  if type(o.total) ~= 'number' or o.total < 1 or o.total ~= math.floor(o.total) then
    error(fmt('%s: total must be a whole number of steps >= 1, got %s', who,
              tostring(o.total)), 0)
  end
  if o.warmup > o.total then
    error(fmt('%s: warmup %d is longer than total %d', who, o.warmup, o.total), 0)
  end
  check_number(who, 'min_lr', o.min_lr, 0, math.huge)
  return s
end

---------------------------------------------------------------------------------------
-- optimizers
---------------------------------------------------------------------------------------

local Optimizer = {}
Optimizer.__index = Optimizer

local function new_optimizer(kind, fields)
  fields.kind = kind
  fields.t = 0
  fields.buffers = {}
  return setmetatable(fields, Optimizer)
end

local function check_schedule(who, s)
  if s == false or s == nil then return nil end
  if type(s) == 'function' or getmetatable(s) == Schedule
     or (type(s) == 'table' and type(s.lr) == 'function') then
    return s
  end
  error(fmt('%s: schedule must be a function(step, base) or an object with :lr(step), got %s',
            who, type(s)), 0)
end

-- The learning rate the next step will use.
function Optimizer:get_lr(step)
  step = step or self.t
  local s = self.schedule
  if s == nil then return self.lr end
  if type(s) == 'function' then return s(step, self.lr) end
  return s:lr(step, self.lr)
end

function Optimizer:_check(params, grads)
  local who = self.who .. ':step'
  if not agop.is_tensor(params) or not agop.is_tensor(grads) then
    error(who .. ': expected the flat params and grads tensors '
          .. '(from model:flatten_parameters()), got ' .. type(params) .. ', '
          .. type(grads), 0)
  end
  if params:numel() ~= grads:numel() then
    error(fmt('%s: params have %d elements but grads %d', who, params:numel(),
              grads:numel()), 0)
  end
  if params:dim() ~= 1 or grads:dim() ~= 1 then
    error(fmt('%s: params and grads must be flat (1-D), got %s and %s', who,
              check.shape(params), check.shape(grads)), 0)
  end
  for name, b in pairs(self.buffers) do
    if b:numel() ~= params:numel() then
      error(fmt('%s: state buffer %s has %d elements but params %d (a different model?)',
                who, name, b:numel(), params:numel()), 0)
    end
  end
end

function Optimizer:_buffer(name, like)
  local b = self.buffers[name]
  if b == nil then
    b = agop.zeros(like:numel())
    self.buffers[name] = b
  end
  return b
end

-- state() -> {kind=, step=, buffers = {name = tensor copy}}: everything a checkpoint
-- needs to resume (hyperparameters are the script's business).
local transient = {scratch = true, denom = true} -- work space, not state

function Optimizer:state()
  local bufs = {}
  for k, v in pairs(self.buffers) do
    if not transient[k] then bufs[k] = v:clone() end
  end
  return {kind = self.kind, step = self.t, buffers = bufs}
end

-- The buffers each kind of optimizer keeps, and whether its step needs them once a step
-- has been taken (SGD keeps momentum only with momentum != 0).
local state_buffers = {
  SGD = function(self) return self.momentum ~= 0 and {'momentum'} or {} end,
  Adam = function() return {'exp_avg', 'exp_avg_sq'} end,
}
state_buffers.AdamW = state_buffers.Adam

-- check_state(s [, numel]) -> a state load_state can apply without failing: the kind,
-- an integer step >= 0, exactly the buffers this optimizer uses after that many steps,
-- each a finite tensor of numel elements (when numel is given), flattened copies.
-- Nothing of self changes.
function Optimizer:check_state(s, numel)
  local who = self.who .. ':load_state'
  if type(s) ~= 'table' then error(who .. ': expected a table, got ' .. type(s), 0) end
  if s.kind ~= self.kind then
    error(fmt('%s: state is for %s, not %s', who, tostring(s.kind), self.kind), 0)
  end
  if math.type(s.step) ~= 'integer' and not (type(s.step) == 'number'
      and s.step == math.floor(s.step) and s.step < 2 ^ 53) or s.step < 0 then
    error(fmt('%s: step must be an integer >= 0, got %s', who, tostring(s.step)), 0)
  end
  local step = math.tointeger(s.step)
  local given = s.buffers or {}
  if type(given) ~= 'table' then error(who .. ': buffers must be a table', 0) end
  local want, bufs = {}, {}
  for _, k in ipairs(step > 0 and state_buffers[self.kind](self) or {}) do
    want[k] = true
    if given[k] == nil then
      error(fmt('%s: the %s buffer is missing (the state is after %d steps)', who, k, step), 0)
    end
  end
  for k, v in pairs(given) do
    if not want[k] then
      error(fmt('%s: unexpected buffer %s for %s after %d steps', who, tostring(k), self.kind,
                step), 0)
    end
    if not agop.is_tensor(v) then error(fmt('%s: buffer %s is not a tensor', who, k), 0) end
    if numel and v:numel() ~= numel then
      error(fmt('%s: buffer %s has %d elements, the parameters %d', who, k, v:numel(), numel), 0)
    end
    if not v:isfinite() then error(fmt('%s: buffer %s holds NaN or Inf', who, k), 0) end
    bufs[k] = v:clone():reshape(v:numel())
  end
  return {kind = self.kind, step = step, buffers = bufs}
end

function Optimizer:load_state(s, numel)
  local ok, st = pcall(self.check_state, self, s, numel)
  if not ok then error(st, 0) end
  self.t = st.step
  self.buffers = st.buffers
  return self
end

function Optimizer:__tostring()
  local keys = {}
  for _, k in ipairs(self.hyper) do
    local v = self[k]
    if type(v) == 'table' and not getmetatable(v) then
      local parts = {}
      for i, x in ipairs(v) do parts[i] = tostring(x) end
      v = '{' .. table.concat(parts, ', ') .. '}'
    end
    keys[#keys + 1] = fmt('%s=%s', k, tostring(v))
  end
  if self.schedule then keys[#keys + 1] = 'schedule=' .. tostring(self.schedule) end
  return fmt('optim.%s{%s}', self.kind, table.concat(keys, ', '))
end

-- optim.SGD{lr=, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false,
--           schedule = nil}
--   g = grad + wd * p; buf = momentum * buf + (1 - dampening) * g (buf = g at the first
--   step); g = nesterov and g + momentum * buf or buf; p = p - lr * g
function optim.SGD(opt)
  local who = 'optim.SGD'
  opt = util.options(opt, {lr = util.REQUIRED, momentum = 0, dampening = 0,
                           weight_decay = 0, nesterov = false, schedule = false}, who)
  check_number(who, 'lr', opt.lr, 0, math.huge)
  check_number(who, 'momentum', opt.momentum, 0, 1, false, true)
  check_number(who, 'dampening', opt.dampening, 0, 1)
  check_number(who, 'weight_decay', opt.weight_decay, 0, math.huge)
  if opt.nesterov and (opt.momentum == 0 or opt.dampening ~= 0) then
    error(who .. ': nesterov needs momentum > 0 and dampening 0', 0)
  end
  return new_optimizer('SGD', {
    who = who, lr = opt.lr, momentum = opt.momentum, dampening = opt.dampening,
    weight_decay = opt.weight_decay, nesterov = opt.nesterov and true or false,
    schedule = check_schedule(who, opt.schedule),
    hyper = {'lr', 'momentum', 'dampening', 'weight_decay', 'nesterov'},
    step = optim._sgd_step,
  })
end

-- opt:step(params, grads) -> the lr used. Updates params (and the state) in place, in one
-- fused pass over memory (agop.sgd_step; the tensor ops it replaced made 3 to 5 passes over
-- VGG11's 9.2M parameters: with momentum 0.9, 1.5-1.85x slower, 3 runs of 15 on 2 shared
-- cores). Its rounding is theirs, step for step (test_optim.lua compares them bit for bit).
function optim._sgd_step(self, params, grads)
  self:_check(params, grads)
  local lr = self:get_lr(self.t)
  local buf, first = nil, false
  if self.momentum ~= 0 then
    buf = self.buffers.momentum
    if buf == nil then
      buf = self:_buffer('momentum', params)
      first = true
    end
  end
  agop.sgd_step(params, grads, buf, lr, self.momentum, self.dampening, self.weight_decay,
                self.nesterov, first)
  self.t = self.t + 1
  return lr
end

local function adam(kind, who, opt, decoupled)
  opt = util.options(opt, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8,
                           weight_decay = decoupled and 1e-2 or 0, schedule = false}, who)
  check_number(who, 'lr', opt.lr, 0, math.huge)
  if type(opt.betas) ~= 'table' or #opt.betas ~= 2 then
    error(who .. ': betas must be a list of two numbers', 0)
  end
  check_number(who, 'betas[1]', opt.betas[1], 0, 1, false, true)
  check_number(who, 'betas[2]', opt.betas[2], 0, 1, false, true)
  check_number(who, 'eps', opt.eps, 0, math.huge, true)
  check_number(who, 'weight_decay', opt.weight_decay, 0, math.huge)
  return new_optimizer(kind, {
    who = who, lr = opt.lr, betas = {opt.betas[1], opt.betas[2]}, eps = opt.eps,
    weight_decay = opt.weight_decay, decoupled = decoupled,
    schedule = check_schedule(who, opt.schedule),
    hyper = {'lr', 'betas', 'eps', 'weight_decay'},
    step = optim._adam_step,
  })
end

-- optim.Adam{lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0, schedule}
--   g = grad + wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
--   p = p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
function optim.Adam(opt) return adam('Adam', 'optim.Adam', opt, false) end

-- optim.AdamW{...}: as Adam, but weight decay is decoupled: p = p * (1 - lr*wd) first
-- (default weight_decay 1e-2, as PyTorch).
function optim.AdamW(opt) return adam('AdamW', 'optim.AdamW', opt, true) end

function optim._adam_step(self, params, grads)
  self:_check(params, grads)
  local lr = self:get_lr(self.t)
  local b1, b2 = self.betas[1], self.betas[2]
  local t = self.t + 1
  local g = grads
  if self.weight_decay ~= 0 then
    if self.decoupled then
      params:mul_(1 - lr * self.weight_decay)
    else
      g = self:_buffer('scratch', params):copy(grads):add_(params, self.weight_decay)
    end
  end
  local m = self:_buffer('exp_avg', params)
  local v = self:_buffer('exp_avg_sq', params)
  m:mul_(b1):add_(g, 1 - b1)
  v:mul_(b2):addcmul_(g, g, 1 - b2)
  local bc1, bc2 = 1 - b1 ^ t, 1 - b2 ^ t
  local denom = self:_buffer('denom', params):copy(v):sqrt_():mul_(1 / math.sqrt(bc2))
  denom:add_(self.eps)
  params:addcdiv_(m, denom, -lr / bc1)
  self.t = t
  return lr
end

return optim
