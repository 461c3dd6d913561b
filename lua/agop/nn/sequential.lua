-- agop.nn.sequential: nn.Sequential, the container that chains modules and names
-- the failing child in errors ("Sequential[3] (nn.Conv2d): ...").
local nn = require('agop.nn.module')

local Module = nn.Module
local fmt = string.format

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

return nn.Sequential
