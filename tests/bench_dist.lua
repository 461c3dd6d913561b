-- make bench, part 2: how data-parallel AGOP and training scale from 1 to 2 ranks under
-- mpirun (1 thread per rank), as ratios of times measured in this run, and the cost of
-- one allreduce of VGG11's full gradient buffer (37 MB) between two ranks on this node.
--   agoplua tests/bench_dist.lua            (starts `mpirun -np 1` and `-np 2` of itself)
local agop = require('agop')
local dist = require('agop.dist')

local STEPS, BATCH, WIDTH, AGOP_N = 8, 64, 0.25, 400

if dist.launched() then -- a rank
  local models, data, features, train = agop.models, agop.data, agop.features, agop.train
  local set = data.load('mnist', 'train', {limit = (STEPS + 1) * BATCH})
  local m = models.vgg11{width = WIDTH, generator = agop.Generator(1)}
  dist.barrier()
  local t0, c0 = agop.time(), os.clock()
  features.agop(m, set.images:narrow(1, 1, AGOP_N), {batch = 50})
  local c_agop = os.clock() - c0 -- this rank's CPU seconds: the work it was given
  dist.barrier()
  local t_agop = agop.time() - t0
  local t_first, c_first -- from the end of step 1 (warm-up) to the end of the last step
  train.fit(m, set, nil, {epochs = 1, batch = BATCH, max_steps = STEPS + 1, quiet = true,
    checkpoint = false, on_step = function(step)
      if step == 1 then t_first, c_first = agop.time(), os.clock() end
    end})
  local c_train = (os.clock() - c_first) / STEPS
  dist.barrier()
  local t_train = (agop.time() - t_first) / STEPS
  c_agop, c_train = table.unpack(dist.allreduce({c_agop, c_train}, 'max'))
  -- one allreduce of the gradient buffer trained above, and of full-width VGG11's
  local function allreduce_time(grads)
    dist.allreduce(grads)
    dist.barrier()
    local t = agop.time()
    for _ = 1, 5 do dist.allreduce(grads) end
    return (agop.time() - t) / 5
  end
  local _, small = m:flatten_parameters()
  local t_small = allreduce_time(small)
  local _, grads = models.vgg11{width = 1}:flatten_parameters()
  local t_ar = allreduce_time(grads)
  if dist.is_root() then
    print(string.format('RESULT ranks=%d agop=%.4f step=%.4f allreduce=%.5f bytes=%d small=%.5f ' ..
      'sbytes=%d cagop=%.4f cstep=%.4f', dist.size(), t_agop, t_train, t_ar, 4 * grads:numel(),
      t_small, 4 * small:numel(), c_agop, c_train))
  end
  return
end

-- as root (CI), OpenMPI needs the two ALLOW variables; set for these children only
local env = 'env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=^openib ' ..
  'AGOP_THREADS=1'
local exe = arg[-1]
local res = {}
print(string.format('distributed (mpirun, 1 thread per rank): VGG11 width %g, AGOP of 8 layers ' ..
  'over %d images, training steps of a global batch of %d', WIDTH, AGOP_N, BATCH))
for _, np in ipairs({1, 2}) do
  local p = io.popen(string.format('%s mpirun --oversubscribe --bind-to none -np %d %s %s 2>&1',
    env, np, exe, arg[0]))
  local out = p:read('a')
  p:close()
  local r, a, s, ar, bytes, sm, sb, ca, cs = out:match(
    'RESULT ranks=(%d+) agop=(%S+) step=(%S+) allreduce=(%S+) bytes=(%d+) small=(%S+) sbytes=(%d+) ' ..
    'cagop=(%S+) cstep=(%S+)')
  if not r then
    print('  mpirun -np ' .. np .. ' failed:\n' .. out)
    return
  end
  res[np] = {agop = tonumber(a), step = tonumber(s), ar = tonumber(ar), bytes = tonumber(bytes),
    small = tonumber(sm), sbytes = tonumber(sb), cagop = tonumber(ca), cstep = tonumber(cs)}
  print(string.format('  %d rank(s): AGOP %.2f s (busiest rank: %.2f s of CPU), training %.3f s/step ' ..
    '(%.0f img/s; busiest rank: %.3f s of CPU)', np, res[np].agop, res[np].cagop, res[np].step,
    BATCH / res[np].step, res[np].cstep))
end
local cores = tonumber(io.popen('nproc'):read('l')) or 0
print(string.format('  scaling 1 -> 2 ranks, wall time: AGOP %.2fx, training %.2fx (ideal 2.00x; %d cores, ' ..
  'load average %s when it ended)', res[1].agop / res[2].agop, res[1].step / res[2].step, cores,
  (io.open('/proc/loadavg'):read('l') or ''):match('^(%S+)')))
print(string.format('  scaling 1 -> 2 ranks, CPU seconds of the busiest rank (its share of the work, ' ..
  'plus waiting in MPI, which spins): AGOP %.2fx, training %.2fx', res[1].cagop / res[2].cagop,
  res[1].cstep / res[2].cstep))
print(string.format('  one allreduce of the width-%g gradients (%.1f MB) between 2 ranks: %.1f ms, ' ..
  '%.0f%% of a 2-rank step', WIDTH, res[2].sbytes / 1e6, 1e3 * res[2].small, 100 * res[2].small / res[2].step))
print(string.format('  one allreduce of %.1f MB (full-width VGG11 gradients) between 2 ranks: %.1f ms ' ..
  '(2(p-1)/p n = %.1f MB moved per rank: %.1f GB/s)', res[2].bytes / 1e6, 1e3 * res[2].ar,
  res[2].bytes / 1e6, res[2].bytes / res[2].ar / 1e9))
