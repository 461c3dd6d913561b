-- agop.nn.loss: nn.CrossEntropyLoss.
local agop = require('agop')
local check = require('agop.check')
local nn = require('agop.nn.module')
local H = require('agop.nn.helpers')

local Module = nn.Module
local fmt = string.format
local shape, check_tensor = check.shape, check.tensor
local check_input = H.check_input
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

return nn.CrossEntropyLoss
