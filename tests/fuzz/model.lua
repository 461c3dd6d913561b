-- Fuzz target: model and checkpoint files, both safetensors with metadata. The first
-- byte of an input chooses the reader, the rest is the file:
--   even: models.load(path) (architecture from __metadata__.config, then the weights)
--   odd:  train.fit{resume = true} of a tiny model whose out folder holds the file as
--         checkpoint.safetensors (parameters, optimizer buffers, generator states,
--         epoch/batch/step counters, log), with SGD, or Adam when bit 1 is set
local agop = require('agop')
local nn = require('agop.nn')
local models = require('agop.models')
local train = require('agop.train')
local common = dofile(fuzz.here .. '/common.lua')

local M = {}
local out = fuzz.dir .. '/run'
-- train.fit creates its out folder with util.mkdir, a shell per call: make it once here,
-- and let fit's call find it (a fork per input would cost 90 % of the time)
local util = require('agop.util')
util.mkdir(out)
local mkdir = util.mkdir
if not fuzz.corpus then -- (make_corpus.lua runs the real one)
  util.mkdir = function(path)
    if path ~= out then mkdir(path) end
  end
end

-- the tiny run whose checkpoints the corpus holds (tests/fuzz/make_corpus.lua)
function M.tiny()
  agop.manual_seed(1)
  local model = nn.Sequential():add(nn.Flatten()):add(nn.Linear(4, 2))
  local images = agop.arange(0, 16):reshape(4, 1, 2, 2):div(16)
  local labels = agop.tensor({0, 1, 1, 0})
  return model, {images = images, labels = labels}
end

M.fit_opts = {epochs = 2, batch = 2, lr = 0.1, quiet = true, eval_batch = 4, log_every = 1}

return setmetatable(M, {__call = function(_, data)
  local b, file = common.split(data)
  if b % 2 == 0 then
    pcall(models.load, common.write('model.safetensors', file))
    return
  end
  common.write('run/checkpoint.safetensors', file)
  local model, set = M.tiny()
  local opts = {out = out, resume = true, checkpoint = false,
    optimizer = b & 2 ~= 0 and 'adam' or 'sgd'}
  for k, v in pairs(M.fit_opts) do opts[k] = v end
  pcall(train.fit, model, set, set, opts)
end})
