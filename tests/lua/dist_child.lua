-- What test_dist.lua runs under `mpirun -np N` (and in one process, for the reference).
--   agoplua tests/lua/dist_child.lua collectives OUT     -> OUT/collectives.json
--   agoplua tests/lua/dist_child.lua agop OUT            -> OUT/s<l>.npy (the S_l / n factors)
--   agoplua tests/lua/dist_child.lua train OUT [kill_at_step [resume]]
--       -> OUT/losses.json (per-step loss), OUT/final<rank>.npy (every rank's parameters)
-- Rank 0 writes, except final<rank>.npy, which lets the test check that ranks agree.
local agop = require('agop')
local dist = require('agop.dist')
local json = require('agop.json')
local util = require('agop.util')

local mode, out = arg[1], arg[2]
local rank, size = dist.rank(), dist.size()

local function write_json(name, v)
  if rank == 0 then util.write_file(out .. '/' .. name, json.encode(v)) end
end

-- a tiny net of every layer kind training uses (conv, ReLU, pool, linear; no dropout or
-- batchnorm, whose per-shard randomness and statistics differ by design)
local function tiny_net()
  local nn = require('agop.nn')
  local g = agop.Generator(3)
  return nn.Sequential()
    :add(nn.Conv2d(1, 4, 3, {padding = 1, generator = g})):add(nn.ReLU()):add(nn.MaxPool2d(2))
    :add(nn.Conv2d(4, 8, 3, {padding = 1, stride = 2, generator = g})):add(nn.ReLU())
    :add(nn.MaxPool2d(2)):add(nn.Flatten()):add(nn.Linear(8 * 4 * 4, 10, {generator = g}))
end

if mode == 'collectives' then
  local r = {rank = rank, size = size}
  local t = agop.ones(3, 4):mul(rank + 1)
  r.sum = dist.allreduce(t):sum() / 12 -- sum over ranks of rank + 1
  r.max = dist.allreduce(agop.ones(5):mul(rank + 1), 'max'):get(1)
  r.min = dist.allreduce(agop.ones(5):mul(rank + 1), 'min'):get(1)
  r.prod = dist.allreduce(agop.ones(2):mul(rank + 1), 'prod'):get(2)
  local d = agop.dmatrix(2) -- double: 1 + 1e-12 per rank survives, float32 would not
  d:add(agop.ones(2, 2))
  d:add(agop.ones(2, 2):mul(1e-12 * (rank + 1)))
  dist.allreduce(d)
  r.dsum_minus_size = d:get(2, 2) - size
  r.numbers = dist.allreduce({rank, 2.5}, 'sum')
  r.number_max = dist.allreduce(rank, 'max')
  local red = dist.reduce(agop.ones(3):mul(rank + 1), 'sum', 0):get(1)
  r.reduce = dist.gather_table(red) -- root has the sum, others their own value
  local b = agop.ones(4):mul(rank + 10)
  dist.broadcast(b, size - 1)
  r.broadcast = b:get(4)
  r.broadcast_table = dist.broadcast(rank == 0 and {msg = 'from 0', n = 7} or 'ignored')
  r.gather = dist.gather_table({rank = rank, name = 'r' .. rank})
  r.shards = dist.gather_table({dist.shard(10)})
  dist.barrier()
  -- a sweep of 5 jobs, 2 of them already done: each rank runs its share in a world of
  -- its own; rank 0 sees every result once, in job order
  local jobs = {}
  for j = 1, 5 do jobs[j] = {key = 'job' .. j, x = j} end
  local seen = {}
  local done = dist.sweep(jobs, function(job)
    return {y = job.x * job.x, ran_on = dist.world_rank(), solo_size = dist.size()}
  end, {done = {job2 = {y = 4, ran_on = -1, solo_size = 1}, job4 = {y = 16, ran_on = -1, solo_size = 1}},
        on_result = function(key) seen[#seen + 1] = key end})
  r.sweep, r.sweep_seen = done, seen
  r.sweep_ranks = dist.gather_table(#util.keys(done))
  write_json('collectives.json', r)
elseif mode == 'agop' then
  local models, data, features = agop.models, agop.data, agop.features
  local m = models.vgg11{width = 0.0625, generator = agop.Generator(2)}
  local images = data.load('mnist', 'train', {limit = 130}).images -- 3 batches of 50, 50, 30
  local _, _, S = features.agop(m, images, {batch = 50})
  if rank == 0 then
    for l, s in ipairs(S) do agop.save(string.format('%s/s%d.npy', out, l), s) end
  end
elseif mode == 'train' then
  local data, train = agop.data, agop.train
  local kill_at, resume = tonumber(arg[3] or '0'), arg[4] == 'resume'
  local model = tiny_net()
  -- 331 images in global batches of 32: 10 full batches and one of 11 (6 + 5 on 2 ranks,
  -- so the shards' losses must be weighed by their sizes)
  local tr = data.load('mnist', 'train', {limit = 331})
  local te = data.load('mnist', 'test', {limit = 100})
  local losses = {}
  local prior = resume and util.exists(out .. '/losses.json')
    and json.decode(util.read_file(out .. '/losses.json')) or {}
  local r = train.fit(model, tr, te, {epochs = 2, batch = 32, lr = 0.05, out = out, quiet = true,
    resume = resume, log_every = 1,
    on_step = function(step, loss)
      losses[step] = loss
      if step == kill_at and rank == size - 1 then
        io.stdout:flush()
        os.execute('kill -KILL ' .. io.open('/proc/self/stat'):read('n'))
      end
    end,
    on_epoch = function() -- what the test compares, saved as far as the checkpoint goes
      for k, v in pairs(losses) do prior[tostring(k)] = v end
      write_json('losses.json', prior)
    end})
  agop.save(string.format("%s/final%d.npy", out, rank), (model:flatten_parameters()))
  if rank == 0 then
    print(string.format('done steps=%d resumed=%s ranks=%d', r.steps, tostring(r.resumed_from), size))
  end
else
  error('dist_child.lua: unknown mode ' .. tostring(mode))
end
