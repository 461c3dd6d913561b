-- agop.nn.conv: nn.Conv2d, its backends (oneDNN plans or im2col + OpenBLAS) and the
-- buffers it reuses across calls.
local agop = require('agop')
local util = require('agop.util')
local check = require('agop.check')
local nn = require('agop.nn.module')
local H = require('agop.nn.helpers')

local Module = nn.Module
local fmt = string.format
local check_int, check_generator = check.int, check.generator
local default_init, named = H.default_init, H.named

-- nn.Conv2d(cin, cout, k, {stride = 1, padding = 0, bias = true, generator = nil})
local Conv2d = nn.class('Conv2d', Module)

function Conv2d:__init(cin, cout, k, opt)
  Module.__init(self)
  local who = 'nn.Conv2d'
  opt = util.options(opt, {stride = 1, padding = 0, bias = true, generator = false}, who)
  self.in_channels = check_int(who, 'in_channels', cin, 1)
  self.out_channels = check_int(who, 'out_channels', cout, 1)
  self.kernel_size = check_int(who, 'kernel size', k, 1, 1024)
  self.stride = check_int(who, 'stride', opt.stride, 1, 1024)
  self.padding = check_int(who, 'padding', opt.padding, 0, 1024)
  self.weight = agop.zeros(cout, cin, k, k)
  self.gradWeight = agop.zeros(cout, cin, k, k)
  if opt.bias then
    self.bias = agop.zeros(cout)
    self.gradBias = agop.zeros(cout)
  end
  self.need_gradInput = true
  default_init(self, cin * k * k, check_generator(who, opt.generator))
end

-- The conv backend: 'auto' (oneDNN plans where this build has them, im2col + OpenBLAS
-- elsewhere), 'dnnl' (oneDNN, an error where it is missing) or 'im2col' (the reference
-- path). AGOP_CONV sets it at start-up; nn.set_conv_backend(name) at run time.
local conv_backends = {auto = true, dnnl = true, im2col = true}
local conv_backend = os.getenv('AGOP_CONV') or 'auto'
if not conv_backends[conv_backend] then
  error(fmt("AGOP_CONV must be 'auto', 'dnnl' or 'im2col', got '%s'", conv_backend), 0)
end

--- nn.set_conv_backend(name) -> the previous one; nn.conv_backend() -> the current one.
function nn.set_conv_backend(name)
  if not conv_backends[name] then
    error(fmt("nn.set_conv_backend: expected 'auto', 'dnnl' or 'im2col', got %s",
              tostring(name)), 0)
  end
  if name == 'dnnl' and not agop.have_dnnl() then
    error('nn.set_conv_backend: this agoplua was built without oneDNN (make DNNL=1)', 0)
  end
  local old = conv_backend
  conv_backend = name
  return old
end
function nn.conv_backend() return conv_backend end

local MAX_PLANS = 3 -- per conv: e.g. the training batch, its last partial batch, evaluation
-- 'auto' leaves convs of fewer multiply-adds than this to im2col: making a plan (oneDNN
-- compiles its kernels) costs more than such a conv saves
local PLAN_MIN_MACS = 1 << 20

-- The oneDNN plan for this input's size, made on first use (nil: use im2col); ysize is
-- the output's, from agop.conv2d_shape, which has checked the input. A conv keeps the
-- plans of its last MAX_PLANS input sizes; each one owns its primitives and buffers, so
-- that a step maps no fresh memory.
function Conv2d:_plan(input, ysize)
  if conv_backend == 'im2col' then return nil end
  local s = input:size()
  local k = self.kernel_size
  if conv_backend == 'auto' and ysize[1] * ysize[2] * self.in_channels * k * k * ysize[3]
      * ysize[4] < PLAN_MIN_MACS then
    return nil
  end
  -- evaluation (the AGOP sweep, test accuracy) takes a direct forward: Winograd's
  -- rounding breaks the exact ties of uniform regions, and max-pooling would route
  -- gradients unlike im2col and PyTorch (engine/conv_plan.h)
  local algo = self.training and 'auto' or 'auto_direct_forward'
  local key = s[1] .. 'x' .. s[3] .. 'x' .. s[4] .. algo
  local plans = self._plans
  if not plans then
    plans = {}
    self._plans = plans
  end
  for i, e in ipairs(plans) do
    if e.key == key then
      if i > 1 then table.insert(plans, 1, table.remove(plans, i)) end
      return e.plan
    end
  end
  local plan, msg = agop.conv2d_plan(input, self.weight, self.stride, self.padding, algo)
  if not plan and conv_backend == 'dnnl' then
    error('nn.Conv2d: AGOP_CONV=dnnl: ' .. msg, 0)
  end
  table.insert(plans, 1, {key = key, plan = plan or false})
  if #plans > MAX_PLANS then plans[#plans] = nil end
  return plan or nil
end

-- t when it has sizes `size` (a buffer of the previous call, to refill), else nil
local function reusable(t, size)
  if t == nil or not agop.is_tensor(t) or t:dim() ~= #size then return nil end
  for d = 1, #size do
    if t:size(d) ~= size[d] then return nil end
  end
  return t
end

-- The input is checked once, by the conv bindings (bindings/conv.c: a 4-D tensor with
-- this layer's channels, not smaller than the kernel); their errors come back with this
-- module's name in front. agop.conv2d_shape checks it before a backend is picked, so that
-- no oneDNN plan is made for a bad input.
function Conv2d:updateOutput(input)
  local who = 'nn.Conv2d'
  local ysize = named(who, agop.conv2d_shape, input, self.weight, self.stride, self.padding)
  self._input_size = input:size()
  local plan = self:_plan(input, ysize)
  if plan then
    self.output = named(who, plan.forward, plan, input, self.weight, self.bias,
                        reusable(self.output, ysize))
  else
    self.output = named(who, agop.conv2d, input, self.weight, self.bias, self.stride,
                        self.padding)
  end
  return self.output
end

-- gradInput (when `want`) and, when gw is given, the parameter gradients
function Conv2d:_backward(input, gradOutput, gw, gb, want)
  local who = 'nn.Conv2d'
  local plan = self:_plan(input, self.output:size()) -- _check_backward: forward's sizes
  if plan then
    local gx = want and (reusable(self.gradInput, input:size()) or true) or nil
    return named(who, plan.backward, plan, input, self.weight, gradOutput, gw, gb, gx)
  end
  return named(who, agop.conv2d_backward, input, self.weight, gradOutput, self.stride,
               self.padding, gw, gb, want)
end

function Conv2d:updateGradInput(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self.gradInput = self:_backward(input, gradOutput, nil, nil, true)
  return self.gradInput
end

function Conv2d:accGradParameters(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self:_backward(input, gradOutput, self.gradWeight, self.gradBias, false)
end

function Conv2d:backward(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self.gradInput = self:_backward(input, gradOutput, self.gradWeight, self.gradBias,
                                  self.need_gradInput)
  return self.gradInput
end

--- conv:nfm() - this layer's CNFM WᵀW (d x d), as features.nfm(conv); for the REPL.
function Conv2d:nfm() return require('agop.features').nfm(self) end

function Conv2d:__tostring()
  local k = self.kernel_size
  return fmt('nn.Conv2d(%d -> %d, %dx%d, stride %d, pad %d%s)', self.in_channels,
             self.out_channels, k, k, self.stride, self.padding,
             self.bias and '' or ', no bias')
end

return nn
