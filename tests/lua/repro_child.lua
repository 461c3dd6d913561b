-- A short VGG11 run in its own process, for the bit-for-bit reproduction test of
-- test_train.lua: trains width-0.25 VGG11 for 12 steps (dropout on, so the default
-- generator is used too), then computes the AGOP factors of every layer on 20 images.
--   AGOP_THREADS=n agoplua tests/lua/repro_child.lua OUT_DIR
-- Writes OUT_DIR/params.npy (flat parameters) and OUT_DIR/agop_s<l>.npy.
local agop = require('agop')
local models = require('agop.models')
local data = require('agop.data')
local train = require('agop.train')
local features = require('agop.features')

local out = assert(arg[1], 'usage: repro_child.lua OUT_DIR')
agop.manual_seed(7)
local model = models.vgg11{width = 0.25, generator = agop.Generator(7)}
local tr = data.load('mnist', 'train', {limit = 384})
train.fit(model, tr, nil, {epochs = 1, batch = 32, lr = 0.02, warmup = 3, seed = 7,
  quiet = true})
agop.save(out .. '/params.npy', (model:flatten_parameters()))
local _, _, S = features.agop(model, tr.images:narrow(1, 1, 20), {batch = 10})
for l, s in ipairs(S) do agop.save(string.format('%s/agop_s%d.npy', out, l), s) end
print('threads=' .. agop.get_threads())
