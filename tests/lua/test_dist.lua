-- agop.dist: the one-rank world in this process, and real 2-rank (and 3-rank) jobs under
-- `mpirun --oversubscribe` (tests/lua/dist_child.lua): collectives on known values,
-- data-parallel AGOP and training against one process, a SIGKILLed rank and --resume,
-- and a 2-rank init study against one rank.
local lu = require('luaunit')
local agop = require('agop')
local dist = require('agop.dist')
local json = require('agop.json')
local util = require('agop.util')

local helpers = require('helpers')
local exe, tmpdir, sh = helpers.exe, helpers.make_dir, helpers.run

-- The environment of the mpirun children only: CI runs as root, which OpenMPI refuses
-- without the two ALLOW variables; containers often forbid the cross-memory-attach
-- single copy and have no InfiniBand. One thread per rank, so that runs are comparable.
local ENV = 'env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ' ..
  'OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_btl=^openib ' ..
  'OMPI_MCA_rmaps_base_oversubscribe=1 AGOP_THREADS=1'

local function mpirun(np, args)
  return sh(string.format('%s mpirun --oversubscribe --bind-to none -np %d %s %s', ENV, np,
    exe(), args))
end
local function solo(args) return sh(string.format('%s %s %s', ENV, exe(), args)) end

local function have_mpirun()
  local _, ok = sh('command -v mpirun')
  return ok
end

local function read_json(path) return json.decode(util.read_file(path)) end

local function rel_fro(a, b) return (a - b):norm() / math.max(a:norm(), 1e-30) end

TestDist = {}

function TestDist:test_one_rank_world_outside_mpirun()
  lu.assertFalse(dist.launched())
  lu.assertEquals(dist.rank(), 0)
  lu.assertEquals(dist.size(), 1)
  lu.assertTrue(dist.is_root())
  dist.barrier()
  local t = agop.ones(2, 3):mul(4)
  lu.assertTrue(dist.allreduce(t) == t)
  lu.assertEquals(t:sum(), 24)
  lu.assertEquals(dist.allreduce(2.5), 2.5)
  lu.assertEquals(dist.allreduce({1, 2}, 'max'), {1, 2})
  lu.assertEquals(dist.reduce(t, 'min', 0):sum(), 24)
  lu.assertEquals(dist.broadcast({a = 1}, 0), {a = 1})
  lu.assertEquals(dist.gather_table({x = 'y'}), {{x = 'y'}})
  lu.assertEquals({dist.shard(10)}, {1, 10})
  lu.assertEquals({dist.shard(10, 1, 3)}, {5, 3})
  lu.assertEquals({dist.shard(2, 2, 3)}, {3, 0})
  local ran = {}
  local done = dist.sweep({{key = 'a'}, {key = 'b'}, {key = 'c'}}, function(job, j)
    ran[#ran + 1] = job.key
    return j * 10
  end, {done = {b = 99}})
  lu.assertEquals(ran, {'a', 'c'})
  lu.assertEquals(done, {a = 10, b = 99, c = 30})
end

function TestDist:test_argument_errors_name_the_function()
  helpers.errors_with("dist.allreduce: op must be 'sum', 'max', 'min' or 'prod', got 'avg'",
    dist.allreduce, agop.ones(2), 'avg')
  helpers.errors_with('dist.allreduce: expected a tensor or an agop.DMatrix, got string',
    dist.allreduce, 'x')
  helpers.errors_with('must be contiguous', dist.broadcast, agop.ones(2, 3):t())
  helpers.errors_with('dist.broadcast: root must be a rank in [0, 0], got 1',
    dist.broadcast, agop.ones(2), 1)
  helpers.errors_with('dist.sweep: job 1 has no string key', dist.sweep, {{}}, print)
end

function TestDist:test_collectives_on_two_ranks()
  if not have_mpirun() then lu.fail('mpirun not found: make deps installs openmpi-bin') end
  local d = tmpdir()
  local out, ok = mpirun(2, 'tests/lua/dist_child.lua collectives ' .. d)
  lu.assertTrue(ok, out)
  local r = read_json(d .. '/collectives.json')
  lu.assertEquals(r.size, 2)
  lu.assertEquals(r.sum, 3)     -- 1 + 2
  lu.assertEquals(r.max, 2)
  lu.assertEquals(r.min, 1)
  lu.assertEquals(r.prod, 2)
  lu.assertAlmostEquals(r.dsum_minus_size, 3e-12, 1e-14) -- summed in double (float: 0)
  lu.assertEquals(r.numbers, {1, 5})
  lu.assertEquals(r.number_max, 1)
  lu.assertEquals(r.reduce, {3, 2}) -- root got the sum, rank 1 kept its own
  lu.assertEquals(r.broadcast, 11)  -- rank 1's value
  lu.assertEquals(r.broadcast_table, {msg = 'from 0', n = 7})
  lu.assertEquals(r.gather, {{rank = 0, name = 'r0'}, {rank = 1, name = 'r1'}})
  lu.assertEquals(r.shards, {{1, 5}, {6, 5}})
  -- the sweep ran jobs 1, 3, 5 (2 and 4 were done): 1 on rank 0, 3 on rank 1, 5 on rank 0
  lu.assertEquals(r.sweep_seen, {'job1', 'job3', 'job5'})
  for j = 1, 5 do lu.assertEquals(r.sweep['job' .. j].y, j * j) end
  lu.assertEquals(r.sweep.job1.ran_on, 0)
  lu.assertEquals(r.sweep.job3.ran_on, 1)
  lu.assertEquals(r.sweep.job5.ran_on, 0)
  lu.assertEquals(r.sweep.job2.ran_on, -1)
  lu.assertEquals(r.sweep.job3.solo_size, 1) -- each job saw a world of its own
  lu.assertEquals(r.sweep_ranks, {5, 5})     -- every rank got every result
  os.execute("rm -rf '" .. d .. "'")
end

function TestDist:test_agop_on_two_and_three_ranks_equals_one_process()
  local one = tmpdir()
  local out, ok = solo('tests/lua/dist_child.lua agop ' .. one)
  lu.assertTrue(ok, out)
  for _, np in ipairs({2, 3}) do
    local d = tmpdir()
    out, ok = mpirun(np, 'tests/lua/dist_child.lua agop ' .. d)
    lu.assertTrue(ok, out)
    for l = 1, 8 do
      local a = agop.load(string.format('%s/s%d.npy', one, l))
      local b = agop.load(string.format('%s/s%d.npy', d, l))
      local e = rel_fro(a, b)
      lu.assertTrue(e <= 1e-6, string.format('%d ranks, layer %d: relative difference %g', np, l, e))
      lu.assertTrue(a:norm() > 0)
    end
    os.execute("rm -rf '" .. d .. "'")
  end
  os.execute("rm -rf '" .. one .. "'")
end

-- one uninterrupted training run of the tiny net on 1 and on 2 ranks (shared by the tests)
local runs = {}
local function full_run(np)
  if runs[np] then return runs[np] end
  local d = tmpdir()
  local out, ok
  if np == 1 then
    out, ok = solo('tests/lua/dist_child.lua train ' .. d)
  else
    out, ok = mpirun(np, 'tests/lua/dist_child.lua train ' .. d)
  end
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, 'done steps=22 resumed=nil ranks=' .. np)
  runs[np] = {dir = d, losses = read_json(d .. '/losses.json'), final = agop.load(d .. '/final0.npy')}
  return runs[np]
end

function TestDist:test_two_rank_training_matches_one_rank()
  local a, b = full_run(1), full_run(2)
  -- 11 steps an epoch (the last batch of 11 images is split 6 + 5), 22 steps in all;
  -- measured: the losses agree to 5e-8 (the gradients are summed in another order)
  for step = 1, 22 do
    local la, lb = a.losses[tostring(step)], b.losses[tostring(step)]
    lu.assertTrue(la ~= nil and lb ~= nil, 'no loss at step ' .. step)
    lu.assertTrue(math.abs(la - lb) <= 1e-6 * math.abs(la),
      string.format('step %d: loss %.8f on 1 rank, %.8f on 2', step, la, lb))
  end
  lu.assertTrue(a.losses['22'] < 0.8 * a.losses['1'], 'the tiny net did not learn')
  local e = rel_fro(a.final, b.final)
  lu.assertTrue(e < 1e-6, 'final parameters differ by ' .. e)
  -- both ranks hold the same parameters, bit for bit
  lu.assertTrue(b.final:equal(agop.load(b.dir .. '/final1.npy')))
  -- rank 0 alone wrote the log and the checkpoint, and the log has the global batches
  local log = util.read_file(b.dir .. '/train_log.csv')
  lu.assertStrContains(log, '\n2,22,')
  lu.assertTrue(util.exists(b.dir .. '/checkpoint.safetensors'))
end

function TestDist:test_sigkill_of_one_rank_ends_the_job_and_resume_continues()
  local full1, full2 = full_run(1), full_run(2)
  local d = tmpdir()
  -- rank 1 kills itself at step 15 (epoch 2, batch 4): only epoch 1's checkpoint exists
  local out, ok = mpirun(2, 'tests/lua/dist_child.lua train ' .. d .. ' 15')
  lu.assertFalse(ok, 'the job should have failed: ' .. out)
  lu.assertStrContains(out, 'exited on signal 9')
  lu.assertTrue(util.exists(d .. '/checkpoint.safetensors'))
  lu.assertFalse(util.exists(d .. '/final0.npy'))
  os.execute(string.format("cp -r '%s' '%s.one'", d, d))
  -- resumed on 2 ranks: exactly the uninterrupted 2-rank run
  out, ok = mpirun(2, 'tests/lua/dist_child.lua train ' .. d .. ' 0 resume')
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, 'done steps=22 resumed=2 ranks=2')
  local final = agop.load(d .. '/final0.npy')
  lu.assertTrue(final:equal(full2.final), 'max |diff| = ' .. (final - full2.final):abs():max())
  -- resumed on 1 rank: the 1-rank run, within float tolerance
  out, ok = solo('tests/lua/dist_child.lua train ' .. d .. '.one 0 resume')
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, 'done steps=22 resumed=2 ranks=1')
  local e = rel_fro(full1.final, agop.load(d .. '.one/final0.npy'))
  lu.assertTrue(e < 1e-6, 'resumed on 1 rank: parameters differ by ' .. e)
  os.execute(string.format("rm -rf '%s' '%s.one'", d, d))
end

function TestDist:test_two_rank_init_study_writes_the_table_of_one_rank()
  local a, b = tmpdir(), tmpdir()
  local opts = '--quick --threads 1 --train-limit 300 --test-limit 300 --source-limit 600 ' ..
    '--agop-samples 60'
  local out, ok = solo(string.format('scripts/init_study.lua %s --out %s', opts, a))
  lu.assertTrue(ok, out)
  -- the same cached source network (training it on 2 ranks sums its gradients in another
  -- order); its AGOP, the runs and the table are computed again on 2 ranks
  os.execute(string.format("mkdir -p '%s/sources' && cp -r '%s/sources/mnist' '%s/sources/'", b, a, b))
  out, ok = mpirun(2, string.format('scripts/init_study.lua %s --out %s', opts, b))
  lu.assertTrue(ok, out)
  lu.assertEquals(util.read_file(b .. '/table.csv'), util.read_file(a .. '/table.csv'))
  local runs_a, runs_b = read_json(a .. '/runs.json'), read_json(b .. '/runs.json')
  lu.assertEquals(#util.keys(runs_b), 3)
  for k, r in pairs(runs_a) do lu.assertEquals(runs_b[k].acc_final, r.acc_final, k) end
  -- rank 0 alone wrote: one report, no stray files from rank 1
  lu.assertTrue(util.exists(b .. '/run.json'))
  os.execute(string.format("rm -rf '%s' '%s'", a, b))
end
