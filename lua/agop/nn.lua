-- agop.nn - neural network modules with Torch7's contract.
--
--   local nn = require('agop.nn')
--   local net = nn.Sequential()
--     :add(nn.Conv2d(1, 8, 3, {padding = 1})):add(nn.ReLU()):add(nn.MaxPool2d(2))
--     :add(nn.Flatten()):add(nn.Linear(8 * 4 * 4, 10))
--   local y = net:forward(x)                 -- x: (B, 1, 8, 8)
--   local gx = net:backward(x, gy)           -- fills gradInput, adds into gradients
--   local params, grads = net:flatten_parameters()   -- one flat buffer each
--
-- A module keeps `output` and `gradInput`; forward(input) -> output;
-- updateGradInput(input, gradOutput) -> gradInput; accGradParameters(input, gradOutput)
-- adds into gradWeight / gradBias; backward does both. Parameter gradients accumulate
-- until zeroGrad(). Every check raises a Lua error naming the module ("nn.Conv2d: ...");
-- a Sequential prefixes the failing child ("Sequential[3] (nn.Conv2d): ...").
local agop = require('agop')
local util = require('agop.util')
local check = require('agop.check')
local init = require('agop.init')

local nn = {}

local floor, sqrt, max = math.floor, math.sqrt, math.max
local fmt = string.format

---------------------------------------------------------------------------------------
-- classes
---------------------------------------------------------------------------------------

-- Metamethods are looked up with rawget on the metatable, so a class copies the ones it
-- inherits into itself when it makes an instance.
local inherited_metamethods = {'__tostring', '__len', '__concat', '__close'}

local function construct(cls, ...)
  for _, k in ipairs(inherited_metamethods) do
    if rawget(cls, k) == nil then
      local v = cls[k]
      if v ~= nil then rawset(cls, k, v) end
    end
  end
  local obj = setmetatable({}, cls)
  local init = cls.__init
  if init then init(obj, ...) end
  return obj
end

-- nn.class(name, parent) -> cls. A class is the metatable of its instances; calling it
-- makes one (cls(...) runs cls.__init). A plain name ('Conv2d') registers nn.Conv2d with
-- type name 'nn.Conv2d'; a dotted name ('models.VGG') is used as the type name as is
-- and registers nothing.
function nn.class(name, parent)
  assert(type(name) == 'string' and name ~= '', 'nn.class: name must be a non-empty string')
  if parent ~= nil and (type(parent) ~= 'table' or not rawget(parent, '__typename')) then
    error('nn.class: parent of ' .. name .. ' must be a class made by nn.class', 0)
  end
  local typename = name:find('.', 1, true) and name or 'nn.' .. name
  local cls = {__typename = typename, __parent = parent}
  cls.__index = cls
  setmetatable(cls, {__index = parent, __call = construct,
                     __tostring = function() return 'class ' .. typename end})
  if not name:find('.', 1, true) then nn[name] = cls end
  return cls
end

-- The type name of a module ('nn.Conv2d'), or nil.
function nn.typename(obj)
  local mt = type(obj) == 'table' and getmetatable(obj)
  return mt and rawget(mt, '__typename') or nil
end

-- True when obj is an instance of cls or of a subclass.
function nn.is_a(obj, cls)
  local mt = type(obj) == 'table' and getmetatable(obj)
  while mt do
    if mt == cls then return true end
    mt = rawget(mt, '__parent')
  end
  return false
end

---------------------------------------------------------------------------------------
-- helpers
---------------------------------------------------------------------------------------

-- the checks of agop.check, under local names (one policy: "nn.Type: ...", level 0)
local shape, same_size = check.shape, check.same_size
local check_tensor, check_int, check_number = check.tensor, check.int, check.number
local check_generator = check.generator

---------------------------------------------------------------------------------------
-- nn.Module
---------------------------------------------------------------------------------------

local Module = nn.class('Module')

function Module:__init()
  self.output = nil
  self.gradInput = nil
  self.training = true
end

function Module:updateOutput(input)
  error(nn.typename(self) .. ': updateOutput is not implemented', 0)
end

function Module:forward(input)
  return self:updateOutput(input)
end

-- For modules without an input gradient rule.
function Module:updateGradInput(input, gradOutput)
  error(nn.typename(self) .. ': updateGradInput is not implemented', 0)
end

function Module:accGradParameters(input, gradOutput) end

function Module:backward(input, gradOutput)
  self:updateGradInput(input, gradOutput)
  self:accGradParameters(input, gradOutput)
  return self.gradInput
end

-- The common checks of a backward call: forward ran, gradOutput has output's shape.
function Module:_check_backward(input, gradOutput)
  local who = nn.typename(self)
  if self.output == nil then
    error(who .. ': backward called before forward', 0)
  end
  check_tensor(who, 'input', input)
  check_tensor(who, 'gradOutput', gradOutput)
  if self._input_size then
    local s = input:size()
    local ok = #s == #self._input_size
    for i = 1, #s do ok = ok and s[i] == self._input_size[i] end
    if not ok then
      error(fmt('%s: backward input is %s but forward saw %s', who, shape(input),
                check.sizes(self._input_size)), 0)
    end
  end
  if not same_size(gradOutput, self.output) then
    error(fmt('%s: gradOutput is %s but output is %s', who, shape(gradOutput),
              shape(self.output)), 0)
  end
end

-- (module, param field, grad field) triples, in order: what parameters() lists and what
-- flatten_parameters() rebinds.
function Module:_param_slots(out)
  out = out or {}
  if self.weight then out[#out + 1] = {self, 'weight', 'gradWeight'} end
  if self.bias then out[#out + 1] = {self, 'bias', 'gradBias'} end
  return out
end

-- parameters() -> params, grads: two lists of tensors (empty for parameterless modules).
function Module:parameters()
  local params, grads = {}, {}
  local seen = {}
  for _, s in ipairs(self:_param_slots()) do
    local p = s[1][s[2]]
    if not seen[p] then
      seen[p] = true
      params[#params + 1] = p
      grads[#grads + 1] = s[1][s[3]]
    end
  end
  return params, grads
end

-- The number of parameter values (shared tensors counted once).
function Module:num_parameters()
  local n = 0
  for _, p in ipairs((self:parameters())) do n = n + p:numel() end
  return n
end

-- Children as {name, module} pairs (used by state_dict and apply).
function Module:_children() return {} end

-- The named tensors of this module itself (not its children), in PyTorch's order.
function Module:_own_state()
  local out = {}
  if self.weight then out[#out + 1] = {'weight', self.weight} end
  if self.bias then out[#out + 1] = {'bias', self.bias} end
  if self.running_mean then out[#out + 1] = {'running_mean', self.running_mean} end
  if self.running_var then out[#out + 1] = {'running_var', self.running_var} end
  return out
end

-- Calls fn(module) on this module and every descendant, parents first.
function Module:apply(fn)
  fn(self)
  for _, c in ipairs(self:_children()) do c[2]:apply(fn) end
  return self
end

-- state_dict() -> ordered list of {name = 'features.0.weight', tensor = t} (live tensors,
-- not copies), names as PyTorch's module would give them.
function Module:state_dict(prefix, out)
  prefix, out = prefix or '', out or {}
  for _, e in ipairs(self:_own_state()) do
    out[#out + 1] = {name = prefix .. e[1], tensor = e[2]}
  end
  for _, c in ipairs(self:_children()) do
    c[2]:state_dict(prefix .. c[1] .. '.', out)
  end
  return out
end

-- load_state_dict(t [, strict]): t is a list of {name=, tensor=} or a map name -> tensor.
-- Values are copied into the existing tensors (so flat parameter views stay valid).
-- Shapes must match; with strict (the default) missing and unexpected names are errors.
-- PyTorch's integer 'num_batches_tracked' entries are ignored.
function Module:load_state_dict(t, strict)
  local who = nn.typename(self) .. ':load_state_dict'
  if type(t) ~= 'table' then error(who .. ': expected a table, got ' .. type(t), 0) end
  if strict == nil then strict = true end
  local given = {}
  if #t > 0 then
    for i, e in ipairs(t) do
      if type(e) ~= 'table' or type(e.name) ~= 'string' then
        error(fmt('%s: entry %d is not {name=, tensor=}', who, i), 0)
      end
      given[e.name] = e.tensor
    end
  else
    for k, v in pairs(t) do given[k] = v end
  end
  local mine = self:state_dict()
  local known = {}
  for _, e in ipairs(mine) do
    known[e.name] = true
    local src = given[e.name]
    if src == nil then
      if strict then error(fmt("%s: missing '%s'", who, e.name), 0) end
    else
      if not agop.is_tensor(src) then
        error(fmt("%s: '%s' is not a tensor", who, e.name), 0)
      end
      if not same_size(src, e.tensor) then
        error(fmt("%s: '%s' is %s in the file but %s in the model", who, e.name,
                  shape(src), shape(e.tensor)), 0)
      end
    end
  end
  if strict then
    local extra = {}
    for k in pairs(given) do
      if not known[k] and not k:match('num_batches_tracked$') then extra[#extra + 1] = k end
    end
    table.sort(extra)
    if #extra > 0 then
      error(fmt("%s: unexpected '%s'%s", who, extra[1],
                #extra > 1 and fmt(' (and %d more)', #extra - 1) or ''), 0)
    end
  end
  for _, e in ipairs(mine) do
    local src = given[e.name]
    if src ~= nil then e.tensor:copy(src) end
  end
  return self
end

-- flatten_parameters() -> params, grads: one flat tensor for all parameters and one for
-- all their gradients. The first call allocates them, copies the values over and makes
-- every module's weight / bias / gradWeight / gradBias a view into them; later calls
-- return the same two tensors (references taken earlier stay valid).
function Module:flatten_parameters()
  if self._flat then return self._flat.params, self._flat.grads end
  local who = nn.typename(self) .. ':flatten_parameters'
  if self._flat_owner then
    error(who .. ': this module is part of a model that is already flattened; use the '
          .. "model's flatten_parameters()", 0)
  end
  local slots = self:_param_slots()
  local n, order, seen = 0, {}, {}
  for _, s in ipairs(slots) do
    local p = s[1][s[2]]
    if not seen[p] then
      seen[p] = {offset = n, numel = p:numel(), size = p:size(), grad = s[1][s[3]]}
      order[#order + 1] = p
      n = n + p:numel()
    end
  end
  local params, grads = agop.zeros(max(n, 0)), agop.zeros(max(n, 0))
  local views = {}
  for _, p in ipairs(order) do
    local e = seen[p]
    local pv = params:narrow(1, e.offset + 1, e.numel):view(e.size)
    local gv = grads:narrow(1, e.offset + 1, e.numel):view(e.size)
    pv:copy(p)
    if e.grad then gv:copy(e.grad) end
    views[p] = {pv, gv}
  end
  for _, s in ipairs(slots) do
    local v = views[s[1][s[2]]]
    if v then s[1][s[2]], s[1][s[3]] = v[1], v[2] end
  end
  self:apply(function(m)
    if m ~= self then
      m._flat = nil
      m._flat_owner = self
    end
  end)
  self._flat = {params = params, grads = grads}
  return params, grads
end
Module.getParameters = Module.flatten_parameters

function Module:zeroGrad()
  if self._flat then
    self._flat.grads:zero()
    return self
  end
  for _, g in ipairs(select(2, self:parameters())) do g:zero() end
  return self
end
Module.zeroGradParameters = Module.zeroGrad

function Module:train()
  self.training = true
  for _, c in ipairs(self:_children()) do c[2]:train() end
  return self
end

function Module:evaluate()
  self.training = false
  for _, c in ipairs(self:_children()) do c[2]:evaluate() end
  return self
end
Module.eval = Module.evaluate

-- Drops the cached output / gradInput (and any saved intermediate) to free memory.
function Module:clearState()
  return self:apply(function(m)
    m.output, m.gradInput, m._input_size = nil, nil, nil
    if m._clear then m:_clear() end
  end)
end

-- Per-call state that clone() does not copy.
local transient = {_flat = true, _flat_owner = true, output = true, gradInput = true,
                   indices = true, mask = true, save_mean = true, save_invstd = true,
                   _grad = true, _input_size = true, _logits_size = true,
                   _plans = true} -- a conv's oneDNN plans: a clone makes its own

-- A deep copy with its own tensors (not flattened, even if this one is; without the
-- cached outputs and gradients of the last forward / backward).
function Module:clone()
  local seen = {}
  local function copy(v)
    if agop.is_tensor(v) then
      if not seen[v] then seen[v] = v:clone() end
      return seen[v]
    end
    if type(v) ~= 'table' then return v end
    if seen[v] then return seen[v] end
    local out = {}
    seen[v] = out
    for k, x in pairs(v) do
      if not transient[k] then out[k] = copy(x) end
    end
    return setmetatable(out, getmetatable(v))
  end
  return copy(self)
end

function Module:__tostring()
  return nn.typename(self) or 'nn.Module'
end

---------------------------------------------------------------------------------------
-- nn.Sequential
---------------------------------------------------------------------------------------

local Sequential = nn.class('Sequential', Module)

function Sequential:__init(...)
  Module.__init(self)
  self.modules = {}
  for i = 1, select('#', ...) do self:add((select(i, ...))) end
end

function Sequential:add(m)
  if not nn.is_a(m, Module) then
    error(fmt('%s:add: expected an nn module, got %s', nn.typename(self),
              nn.typename(m) or type(m)), 0)
  end
  if self._flat or self._flat_owner then
    error(nn.typename(self) .. ':add: the model is flattened; add modules before '
          .. 'flatten_parameters()', 0)
  end
  self.modules[#self.modules + 1] = m
  return self
end

function Sequential:size() return #self.modules end
function Sequential:get(i) return self.modules[i] end
function Sequential:__len() return #self.modules end

function Sequential:_children()
  local out = {}
  for i, m in ipairs(self.modules) do out[i] = {tostring(i - 1), m} end
  return out
end

function Sequential:_param_slots(out)
  out = out or {}
  for _, m in ipairs(self.modules) do m:_param_slots(out) end
  return out
end

-- Runs fn() and prefixes an error with "Sequential[i] (nn.Type): ".
local function in_child(self, i, ok, ...)
  if ok then return ... end
  local err = ...
  if type(err) ~= 'string' then error(err, 0) end
  local name = self.__typename == 'nn.Sequential' and 'Sequential' or self.__typename
  error(fmt('%s[%d] (%s): %s', name, i, nn.typename(self.modules[i]) or '?', err), 0)
end

function Sequential:updateOutput(input)
  local x = input
  for i, m in ipairs(self.modules) do
    x = in_child(self, i, pcall(m.forward, m, x))
  end
  self.output = x
  return x
end

local function seq_backward(self, input, gradOutput, method)
  if #self.modules == 0 then
    self.gradInput = gradOutput
    return gradOutput
  end
  if self.output == nil then
    error(nn.typename(self) .. ': backward called before forward', 0)
  end
  local g = gradOutput
  for i = #self.modules, 1, -1 do
    local m = self.modules[i]
    local x = i > 1 and self.modules[i - 1].output or input
    g = in_child(self, i, pcall(m[method], m, x, g))
    if i > 1 and g == nil then
      error(fmt('%s[%d] (%s): returned no gradInput', nn.typename(self), i,
                nn.typename(m)), 0)
    end
  end
  self.gradInput = g
  return g
end

function Sequential:updateGradInput(input, gradOutput)
  return seq_backward(self, input, gradOutput, 'updateGradInput')
end

function Sequential:accGradParameters(input, gradOutput)
  -- needs every child's gradOutput, i.e. the gradInput of the next one: run after
  -- updateGradInput (as Torch7 does)
  for i = #self.modules, 1, -1 do
    local m = self.modules[i]
    local x = i > 1 and self.modules[i - 1].output or input
    local g = i < #self.modules and self.modules[i + 1].gradInput or gradOutput
    in_child(self, i, pcall(m.accGradParameters, m, x, g))
  end
end

function Sequential:backward(input, gradOutput)
  return seq_backward(self, input, gradOutput, 'backward')
end

function Sequential:__tostring()
  local tab, line, nxt = '  ', '\n', ' -> '
  local parts = {(nn.typename(self) or 'nn.Sequential') .. ' {' .. line .. tab .. '[input'}
  for i = 1, #self.modules do parts[#parts + 1] = nxt .. '(' .. i .. ')' end
  parts[#parts + 1] = nxt .. 'output]'
  for i, m in ipairs(self.modules) do
    local s = tostring(m):gsub(line, line .. tab)
    parts[#parts + 1] = line .. tab .. '(' .. i .. '): ' .. s
  end
  parts[#parts + 1] = line .. '}'
  return table.concat(parts)
end

---------------------------------------------------------------------------------------
-- layers
---------------------------------------------------------------------------------------

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

function Conv2d:_check_input(x)
  local who = 'nn.Conv2d'
  check_input(who, x, 4, '(B, C, H, W)')
  local s = x:size()
  if s[2] ~= self.in_channels then
    error(fmt('%s: input has %d channels, expected %d (input %s)', who, s[2],
              self.in_channels, shape(x)), 0)
  end
  local k, p = self.kernel_size, self.padding
  if s[3] + 2 * p < k or s[4] + 2 * p < k then
    error(fmt('%s: input %dx%d with padding %d is smaller than the %dx%d kernel', who,
              s[3], s[4], p, k, k), 0)
  end
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

-- The oneDNN plan for this input's size, made on first use (nil: use im2col). A conv
-- keeps the plans of its last MAX_PLANS input sizes; each one owns its primitives and
-- buffers, so that a step maps no fresh memory.
function Conv2d:_plan(input)
  if conv_backend == 'im2col' then return nil end
  local s = input:size()
  local k = self.kernel_size
  if conv_backend == 'auto' and s[1] * self.out_channels * self.in_channels * k * k
      * ((s[3] + 2 * self.padding - k) // self.stride + 1)
      * ((s[4] + 2 * self.padding - k) // self.stride + 1) < PLAN_MIN_MACS then
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

function Conv2d:updateOutput(input)
  self:_check_input(input)
  self._input_size = input:size()
  local plan = self:_plan(input)
  if plan then
    local s = input:size()
    local k, p, st = self.kernel_size, self.padding, self.stride
    local ysize = {s[1], self.out_channels, (s[3] + 2 * p - k) // st + 1,
                   (s[4] + 2 * p - k) // st + 1}
    self.output = plan:forward(input, self.weight, self.bias, reusable(self.output, ysize))
  else
    self.output = agop.conv2d(input, self.weight, self.bias, self.stride, self.padding)
  end
  return self.output
end

-- gradInput (when `want`) and, when gw is given, the parameter gradients
function Conv2d:_backward(input, gradOutput, gw, gb, want)
  local plan = self:_plan(input)
  if plan then
    local gx = want and (reusable(self.gradInput, input:size()) or true) or nil
    return plan:backward(input, self.weight, gradOutput, gw, gb, gx)
  end
  return agop.conv2d_backward(input, self.weight, gradOutput, self.stride, self.padding,
                              gw, gb, want)
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

-- Shared by the pooling layers: checks a (B, C, H, W) input against window k, pad p.
local function check_pool_input(who, x, k, p)
  check_input(who, x, 4, '(B, C, H, W)')
  local s = x:size()
  if s[3] + 2 * p < k or s[4] + 2 * p < k then
    error(fmt('%s: input %dx%d with padding %d is smaller than the %dx%d window', who,
              s[3], s[4], p, k, k), 0)
  end
end

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

-- nn.MaxPool2d(k, {stride = k, padding = 0})
local MaxPool2d = nn.class('MaxPool2d', Module)

function MaxPool2d:__init(k, opt) pool_init(self, 'nn.MaxPool2d', k, opt) end

function MaxPool2d:updateOutput(input)
  check_pool_input('nn.MaxPool2d', input, self.kernel_size, self.padding)
  self._input_size = input:size()
  self.output, self.indices = agop.maxpool2d(input, self.kernel_size, self.stride,
                                             self.padding, self.output, self.indices)
  return self.output
end

function MaxPool2d:updateGradInput(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self.gradInput = agop.maxpool2d_backward(input, self.indices, gradOutput, self.gradInput)
  return self.gradInput
end

function MaxPool2d:_clear() self.indices = nil end
MaxPool2d.__tostring = pool_tostring

-- nn.AvgPool2d(k, {stride = k, padding = 0}); padded cells count (PyTorch's default)
local AvgPool2d = nn.class('AvgPool2d', Module)

function AvgPool2d:__init(k, opt) pool_init(self, 'nn.AvgPool2d', k, opt) end

function AvgPool2d:updateOutput(input)
  check_pool_input('nn.AvgPool2d', input, self.kernel_size, self.padding)
  self._input_size = input:size()
  self.output = agop.avgpool2d(input, self.kernel_size, self.stride, self.padding)
  return self.output
end

function AvgPool2d:updateGradInput(input, gradOutput)
  self:_check_backward(input, gradOutput)
  self.gradInput = agop.avgpool2d_backward(input, gradOutput, self.kernel_size, self.stride,
                                           self.padding)
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

---------------------------------------------------------------------------------------
-- losses
---------------------------------------------------------------------------------------

-- nn.CrossEntropyLoss(): forward(logits (B, C), labels) -> mean loss (a number); labels
-- are class ids 0..C-1 as a tensor (B) or a Lua list. backward(logits, labels) -> the
-- gradient of the mean loss w.r.t. the logits.
local CrossEntropyLoss = nn.class('CrossEntropyLoss', Module)

local function check_labels(who, logits, labels)
  check_input(who, logits, 2, '(B, classes) logits')
  if type(labels) == 'table' then
    if #labels == 0 then error(who .. ': labels list is empty', 0) end
    labels = agop.tensor(labels)
  end
  check_tensor(who, 'labels', labels)
  local b, c = logits:size(1), logits:size(2)
  if labels:numel() ~= b or labels:dim() > 2 then
    error(fmt('%s: %d labels (%s) for %d rows of logits', who, labels:numel(),
              shape(labels), b), 0)
  end
  if b > 0 then
    local lo, hi = labels:min(), labels:max()
    if lo ~= lo or hi ~= hi or lo < 0 or hi > c - 1 then
      local bad = (lo ~= lo or lo < 0) and lo or hi
      bad = bad == math.floor(bad) and fmt('%d', bad) or tostring(bad)
      error(fmt('%s: label %s out of range [0, %d]', who, bad, c - 1), 0)
    end
  end
  return labels
end

function CrossEntropyLoss:updateOutput(logits, labels)
  local who = 'nn.CrossEntropyLoss'
  labels = check_labels(who, logits, labels)
  self.output, self._grad = agop.cross_entropy(logits, labels)
  self._logits_size = logits:size()
  return self.output
end

function CrossEntropyLoss:forward(logits, labels) return self:updateOutput(logits, labels) end

function CrossEntropyLoss:updateGradInput(logits, labels)
  local who = 'nn.CrossEntropyLoss'
  if self._grad == nil then error(who .. ': backward called before forward', 0) end
  check_labels(who, logits, labels)
  local s = logits:size()
  if s[1] ~= self._logits_size[1] or s[2] ~= self._logits_size[2] then
    error(fmt('%s: backward logits are %s but forward saw %s', who, shape(logits),
              check.sizes(self._logits_size)), 0)
  end
  self.gradInput = self._grad
  return self.gradInput
end

function CrossEntropyLoss:backward(logits, labels)
  return self:updateGradInput(logits, labels)
end

function CrossEntropyLoss:_clear() self._grad = nil end

return nn
