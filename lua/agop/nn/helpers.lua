-- agop.nn.helpers: what several layers share: their default initialization, the
-- input checks, the naming of their bindings' errors, and the pooling layers'
-- constructor and name.
local util = require('agop.util')
local check = require('agop.check')
local init = require('agop.init')
local nn = require('agop.nn.module')

local Module = nn.Module
local fmt = string.format
local shape, check_tensor, check_int = check.shape, check.tensor, check.int

-- PyTorch's default for conv and linear layers, from the init registry: weight and bias
-- U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform(a = sqrt(5)) gives this bound).
local function default_init(self, _, gen)
  init.module(self, 'torch_default', {generator = gen})
end

local function check_input(who, x, dim, what)
  check_tensor(who, 'input', x)
  if x:dim() ~= dim then
    error(fmt('%s: expected a %d-D %s input, got %s', who, dim, what, shape(x)), 0)
  end
end

-- f(...)'s results; an error of f (a binding, which checks its arguments and names
-- itself) comes back with the module's name `who` in front, as Sequential names a child:
-- 'nn.MaxPool2d: maxpool2d: input 2x5 with padding 0 is smaller than kernel 3 (...)'.
local function pass_on(who, ok, ...)
  if ok then return ... end
  local err = ...
  if type(err) ~= 'string' then error(err, 0) end
  error(who .. ': ' .. err, 0)
end
local function named(who, f, ...) return pass_on(who, pcall(f, ...)) end

local function pool_init(self, who, k, opt)
  Module.__init(self)
  opt = util.options(opt, {stride = false, padding = 0}, who)
  self.kernel_size = check_int(who, 'kernel size', k, 1, 1024)
  self.stride = check_int(who, 'stride', opt.stride or k, 1, 1024)
  self.padding = check_int(who, 'padding', opt.padding, 0, 1024)
  if self.padding > self.kernel_size // 2 then
    error(fmt('%s: padding %d must be at most half the window %d', who, self.padding,
              self.kernel_size), 0)
  end
end

local function pool_tostring(self)
  local k = self.kernel_size
  return fmt('%s(%dx%d, stride %d%s)', nn.typename(self), k, k, self.stride,
             self.padding > 0 and fmt(', pad %d', self.padding) or '')
end

return {default_init = default_init, check_input = check_input, named = named,
  pool_init = pool_init, pool_tostring = pool_tostring}
