-- agop.nn.layers: nn.Linear, nn.ReLU, nn.MaxPool2d, nn.Identity, nn.AvgPool2d,
-- nn.AdaptiveAvgPool2d, nn.BatchNorm2d, nn.Dropout and nn.Flatten (nn.Conv2d is in
-- nn/conv.lua).
local agop = require('agop')
local util = require('agop.util')
local check = require('agop.check')
local nn = require('agop.nn.module')
local H = require('agop.nn.helpers')

local Module = nn.Module
local fmt = string.format
local shape, same_size, check_tensor, check_int, check_number, check_generator =
  check.shape, check.same_size, check.tensor, check.int, check.number, check.generator
local default_init, check_input, named, pool_init, pool_tostring =
  H.default_init, H.check_input, H.named, H.pool_init, H.pool_tostring
-- nn.Linear(in, out, {bias = true, generator = nil})
local Linear = nn.class('Linear', Module)

function Linear:__init(nin, nout, opt)
  Module.__init(self)
  local who = 'nn.Linear'
  opt = util.options(opt, {bias = true, generator = false}, who)
  self.in_features = check_int(who, 'in_features', nin, 1)
  self.out_features = check_int(who, 'out_features', nout, 1)
  self.weight = agop.zeros(nout, nin)
  self.gradWeight = agop.zeros(nout, nin)
  if opt.bias then
    self.bias = agop.zeros(nout)
    self.gradBias = agop.zeros(nout)
  end
  self.need_gradInput = true
  default_init(self, nin, check_generator(who, opt.generator))
end

function Linear:updateOutput(input)
  local who = 'nn.Linear'
  check_input(who, input, 2, '(B, features)')
  if input:size(2) ~= self.in_features then
    error(fmt('%s: input has %d features, expected %d (input %s)', who, input:size(2),
              self.in_features, shape(input)), 0)
  end
  self._input_size = input:size()
  self.output = agop.linear(input, self.weight, self.bias)
  return self.output
end

function Linear:updateGradInput(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self.gradInput = agop.linear_backward(input, self.weight, gradOutput, nil, nil, true)
  return self.gradInput
end

function Linear:accGradParameters(input, gradOutput)
  self:_check_backward(input, gradOutput)
  agop.linear_backward(input, self.weight, gradOutput, self.gradWeight, self.gradBias, false)
end

function Linear:backward(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self.gradInput = agop.linear_backward(input, self.weight, gradOutput, self.gradWeight,
                                        self.gradBias, self.need_gradInput)
  return self.gradInput
end

function Linear:__tostring()
  return fmt('nn.Linear(%d -> %d%s)', self.in_features, self.out_features,
             self.bias and '' or ', no bias')
end

-- nn.Identity()
local Identity = nn.class('Identity', Module)

function Identity:updateOutput(input)
  self.output = input
  return input
end

function Identity:updateGradInput(input, gradOutput)
  self.gradInput = gradOutput
  return gradOutput
end

-- nn.AvgPool2d(k, {stride = k, padding = 0}); padded cells count (PyTorch's default)
local AvgPool2d = nn.class('AvgPool2d', Module)

function AvgPool2d:__init(k, opt) pool_init(self, 'nn.AvgPool2d', k, opt) end

-- The pooling bindings check the input (bindings/pool.c: 4-D, not smaller than the
-- window); their errors come back with the module's name in front.
function AvgPool2d:updateOutput(input)
  self.output = named('nn.AvgPool2d', agop.avgpool2d, input, self.kernel_size, self.stride,
                      self.padding)
  self._input_size = input:size()
  return self.output
end

function AvgPool2d:updateGradInput(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self.gradInput = named('nn.AvgPool2d', agop.avgpool2d_backward, input, gradOutput,
                         self.kernel_size, self.stride, self.padding)
  return self.gradInput
end

AvgPool2d.__tostring = pool_tostring

-- nn.AdaptiveAvgPool2d(oh [, ow = oh])
local AdaptiveAvgPool2d = nn.class('AdaptiveAvgPool2d', Module)

function AdaptiveAvgPool2d:__init(oh, ow)
  Module.__init(self)
  local who = 'nn.AdaptiveAvgPool2d'
  self.output_h = check_int(who, 'output height', oh, 1)
  self.output_w = check_int(who, 'output width', ow or oh, 1)
end

function AdaptiveAvgPool2d:updateOutput(input)
  local who = 'nn.AdaptiveAvgPool2d'
  check_input(who, input, 4, '(B, C, H, W)')
  self._input_size = input:size()
  self.output = agop.adaptive_avgpool2d(input, self.output_h, self.output_w)
  return self.output
end

function AdaptiveAvgPool2d:updateGradInput(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self.gradInput = agop.adaptive_avgpool2d_backward(input, gradOutput)
  return self.gradInput
end

function AdaptiveAvgPool2d:__tostring()
  return fmt('nn.AdaptiveAvgPool2d(%dx%d)', self.output_h, self.output_w)
end

-- nn.BatchNorm2d(c, {eps = 1e-5, momentum = 0.1}): weight (gamma) and bias (beta) are
-- learned; running_mean / running_var are updated in training mode and used in
-- evaluation mode.
local BatchNorm2d = nn.class('BatchNorm2d', Module)

function BatchNorm2d:__init(c, opt)
  Module.__init(self)
  local who = 'nn.BatchNorm2d'
  opt = util.options(opt, {eps = 1e-5, momentum = 0.1}, who)
  self.num_features = check_int(who, 'channels', c, 1)
  self.eps = check_number(who, 'eps', opt.eps, 0, math.huge)
  if self.eps <= 0 then error(who .. ': eps must be positive', 0) end
  self.momentum = check_number(who, 'momentum', opt.momentum, 0, 1)
  self.weight, self.gradWeight = agop.ones(c), agop.zeros(c)
  self.bias, self.gradBias = agop.zeros(c), agop.zeros(c)
  self.running_mean, self.running_var = agop.zeros(c), agop.ones(c)
end

function BatchNorm2d:updateOutput(input)
  local who = 'nn.BatchNorm2d'
  check_input(who, input, 4, '(B, C, H, W)')
  local s = input:size()
  if s[2] ~= self.num_features then
    error(fmt('%s: input has %d channels, expected %d (input %s)', who, s[2],
              self.num_features, shape(input)), 0)
  end
  if self.training and s[1] * s[3] * s[4] < 2 then
    error(fmt('%s: training needs more than one value per channel, got input %s', who,
              shape(input)), 0)
  end
  self._input_size = s
  self._trained_pass = self.training
  self.output, self.save_mean, self.save_invstd = agop.batchnorm2d(
    input, self.weight, self.bias, self.running_mean, self.running_var, self.training,
    self.momentum, self.eps)
  return self.output
end

function BatchNorm2d:backward(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self.gradInput = agop.batchnorm2d_backward(input, self.weight, gradOutput,
                                             self.save_mean, self.save_invstd,
                                             self.gradWeight, self.gradBias,
                                             self._trained_pass)
  return self.gradInput
end

function BatchNorm2d:updateGradInput(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self.gradInput = agop.batchnorm2d_backward(input, self.weight, gradOutput,
                                             self.save_mean, self.save_invstd, nil, nil,
                                             self._trained_pass)
  return self.gradInput
end

function BatchNorm2d:accGradParameters(input, gradOutput)
  self:_check_backward(input, gradOutput)
  agop.batchnorm2d_backward(input, self.weight, gradOutput, self.save_mean,
                            self.save_invstd, self.gradWeight, self.gradBias,
                            self._trained_pass)
end

function BatchNorm2d:_clear() self.save_mean, self.save_invstd = nil, nil end

function BatchNorm2d:__tostring()
  return fmt('nn.BatchNorm2d(%d, eps %g, momentum %g)', self.num_features, self.eps,
             self.momentum)
end

-- nn.Dropout(p = 0.5, {generator = nil}): in training, zeroes each value with
-- probability p and scales the rest by 1/(1-p); identity in evaluation mode. Setting
-- m.fixed_mask (a tensor shaped like the input) reuses that mask instead of drawing one.
local Dropout = nn.class('Dropout', Module)

function Dropout:__init(p, opt)
  Module.__init(self)
  local who = 'nn.Dropout'
  opt = util.options(opt, {generator = false}, who)
  self.p = check_number(who, 'p', p == nil and 0.5 or p, 0, 1, false, true)
  self.generator = check_generator(who, opt.generator)
end

function Dropout:updateOutput(input)
  local who = 'nn.Dropout'
  check_tensor(who, 'input', input)
  self._input_size = input:size()
  if not self.training or self.p == 0 then
    self.mask = nil
    self.output = input
  elseif self.fixed_mask then
    if not same_size(self.fixed_mask, input) then
      error(fmt('%s: fixed_mask is %s but input is %s', who, shape(self.fixed_mask),
                shape(input)), 0)
    end
    self.mask = self.fixed_mask
    self.output = input * self.mask
  else
    self.output, self.mask = agop.dropout(input, self.p, self.generator)
  end
  return self.output
end

function Dropout:updateGradInput(input, gradOutput)
  self:_check_backward(input, gradOutput)
  if self.mask then
    self.gradInput = gradOutput * self.mask
  else
    self.gradInput = gradOutput
  end
  return self.gradInput
end

function Dropout:_clear() self.mask = nil end

function Dropout:__tostring() return fmt('nn.Dropout(%g)', self.p) end

-- nn.Flatten(): (B, d2, d3, ...) -> (B, d2*d3*...)
local Flatten = nn.class('Flatten', Module)

function Flatten:updateOutput(input)
  local who = 'nn.Flatten'
  check_tensor(who, 'input', input)
  if input:dim() < 1 then error(who .. ': input must have a batch dimension', 0) end
  local b = input:size(1)
  self._input_size = input:size()
  self.output = input:reshape(b, b > 0 and input:numel() // b or 0)
  return self.output
end

function Flatten:updateGradInput(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self.gradInput = gradOutput:reshape(input:size())
  return self.gradInput
end

-- nn.ReLU({inplace = false}). In place, the output is the input tensor itself and the
-- input gradient is gradOutput's tensor, both overwritten: no memory of its own (VGG11
-- uses it after each conv, whose output nothing else reads).
local ReLU = nn.class('ReLU', Module)

function ReLU:__init(opt)
  Module.__init(self)
  self.inplace = util.options(opt, {inplace = false}, 'nn.ReLU').inplace == true
end

function ReLU:updateOutput(input)
  check_tensor('nn.ReLU', 'input', input)
  self._input_size = input:size()
  -- refills a buffer when it fits: the input itself in place, else last call's output
  self.output = agop.relu(input, self.inplace and input or self.output)
  return self.output
end

function ReLU:updateGradInput(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self.gradInput = agop.relu_backward(self.output, gradOutput,
                                      self.inplace and gradOutput or self.gradInput)
  return self.gradInput
end

-- nn.MaxPool2d(k, {stride = k, padding = 0})
local MaxPool2d = nn.class('MaxPool2d', Module)

function MaxPool2d:__init(k, opt) pool_init(self, 'nn.MaxPool2d', k, opt) end

function MaxPool2d:updateOutput(input)
  self.output, self.indices = named('nn.MaxPool2d', agop.maxpool2d, input, self.kernel_size,
                                    self.stride, self.padding, self.output, self.indices)
  self._input_size = input:size()
  return self.output
end

function MaxPool2d:updateGradInput(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self.gradInput = named('nn.MaxPool2d', agop.maxpool2d_backward, input, self.indices,
                         gradOutput, self.gradInput)
  return self.gradInput
end

function MaxPool2d:_clear() self.indices = nil end
MaxPool2d.__tostring = pool_tostring

return nn
