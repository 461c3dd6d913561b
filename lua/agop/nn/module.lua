-- agop.nn.module: the class system of agop.nn (nn.class, nn.typename, nn.is_a) and
-- nn.Module, the base of every layer: parameters, state_dict, flatten_parameters, clone.
-- Part of agop.nn (lua/agop/nn.lua), which describes the module contract.
local agop = require('agop')
local check = require('agop.check')

local max = math.max
local fmt = string.format
local shape, same_size, check_tensor = check.shape, check.same_size, check.tensor
local nn = {}

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
                   _grad = true, _input_size = true, _logits_size = true, _labels = true,
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

return nn
