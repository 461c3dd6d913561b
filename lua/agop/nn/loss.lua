-- agop.nn.loss: nn.CrossEntropyLoss.
local agop = require('agop')
local check = require('agop.check')
local nn = require('agop.nn.module')
local named = require('agop.nn.helpers').named

local Module = nn.Module
local fmt = string.format
local shape, check_tensor = check.shape, check.tensor

---------------------------------------------------------------------------------------
-- losses
---------------------------------------------------------------------------------------

-- nn.CrossEntropyLoss(): forward(logits (B, C), labels) -> mean loss (a number); labels
-- are class ids 0..C-1 as a tensor (B) or a Lua list. backward(logits, labels) -> the
-- gradient of the mean loss w.r.t. the logits.
local CrossEntropyLoss = nn.class('CrossEntropyLoss', Module)

-- Labels as a tensor (a Lua list is converted). Their count and values (class ids
-- 0..C-1) are checked once, by agop.cross_entropy (engine/act.c): its errors come back
-- with this module's name in front.
local function label_tensor(who, labels)
  if type(labels) == 'table' then
    if #labels == 0 then error(who .. ': labels list is empty', 0) end
    labels = agop.tensor(labels)
  end
  return check_tensor(who, 'labels', labels)
end

function CrossEntropyLoss:updateOutput(logits, labels)
  local who = 'nn.CrossEntropyLoss'
  labels = label_tensor(who, labels)
  self.output, self._grad = named(who, agop.cross_entropy, logits, labels)
  self._logits_size, self._labels = logits:size(), labels:clone()
  return self.output
end

function CrossEntropyLoss:forward(logits, labels) return self:updateOutput(logits, labels) end

function CrossEntropyLoss:updateGradInput(logits, labels)
  local who = 'nn.CrossEntropyLoss'
  if self._grad == nil then error(who .. ': backward called before forward', 0) end
  check_tensor(who, 'logits', logits)
  labels = label_tensor(who, labels)
  local s = logits:size()
  if s[1] ~= self._logits_size[1] or s[2] ~= self._logits_size[2] then
    error(fmt('%s: backward logits are %s but forward saw %s', who, shape(logits),
              check.sizes(self._logits_size)), 0)
  end
  -- the gradient was computed by forward, for forward's labels
  if not check.same_size(labels, self._labels) or not labels:equal(self._labels) then
    error(who .. ': backward labels differ from the ones forward saw', 0)
  end
  self.gradInput = self._grad
  return self.gradInput
end

function CrossEntropyLoss:backward(logits, labels)
  return self:updateGradInput(logits, labels)
end

function CrossEntropyLoss:_clear() self._grad, self._labels = nil, nil end

return nn.CrossEntropyLoss
