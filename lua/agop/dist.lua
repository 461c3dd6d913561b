-- agop.dist: the same scripts on several processes under mpirun (OpenMPI), no home-made
-- networking. Outside mpirun it is a one-rank world and every call is a cheap no-op.
--
--   local dist = agop.dist
--   dist.rank(), dist.size(), dist.is_root()    -- 0-based rank, number of ranks, rank == 0
--   dist.barrier()
--   dist.allreduce(x [, op])     -- x a contiguous tensor or agop.DMatrix: reduced in
--                                -- place over all ranks (op 'sum' (default), 'max',
--                                -- 'min', 'prod') and returned; x a number or a list of
--                                -- numbers: returns the reduced copy (in double)
--   dist.reduce(x [, op [, root]])   -- like allreduce, the result only on root (0)
--   dist.broadcast(x [, root])   -- a tensor/DMatrix: root's values, in place; any other
--                                -- JSON value (table, string, number, boolean): returns
--                                -- root's
--   dist.gather_table(v [, root])    -- {v of rank 0, v of rank 1, ...} on root, nil
--                                    -- elsewhere (v a JSON value: small Lua data)
--   dist.shard(n [, rank, size]) -> first, count  -- this rank's contiguous block of 1..n
--   dist.solo(fn, ...)           -- runs fn with this process as a one-rank world
--   dist.sweep(jobs, run_one, opts)  -- independent jobs handed to ranks (see below)
--
-- Every call is collective: all ranks make it, in the same order, with buffers of the
-- same size. So are the library functions built on them: features.agop (each rank takes
-- its share of the image batches and the double S_l accumulators are summed),
-- train.fit and train.evaluate (each rank takes its shard of every global batch; one
-- allreduce of the flat gradient buffer per step; rank 0 alone writes checkpoints and
-- logs). MPI is started only when the process was launched by mpirun or srun
-- (OMPI_COMM_WORLD_SIZE or PMIX_RANK set), at the first use of agop.dist, through
-- bindings/dist.c, which opens libmpi with dlopen: a plain `agoplua` never loads it.
local agop = require('agop')
local json = require('agop.json')
local util = require('agop.util')

local dist = {}
local fmt = string.format
local mpi = agop._mpi

local function launched()
  local function set(name)
    local v = os.getenv(name)
    return v ~= nil and v ~= ''
  end
  return set('OMPI_COMM_WORLD_SIZE') or set('PMIX_RANK')
end

--- True when this process was started by mpirun (or srun with PMIx).
dist.launched = launched

local world_rank, world_size = 0, 1
if launched() then world_rank, world_size = mpi.init() end
-- > 0 inside dist.solo: the process is a world of its own
local solo_depth = 0

local function multi() return world_size > 1 and solo_depth == 0 end

function dist.rank() return solo_depth > 0 and 0 or world_rank end
function dist.size() return solo_depth > 0 and 1 or world_size end
function dist.is_root() return dist.rank() == 0 end
--- The rank in MPI_COMM_WORLD, also inside dist.solo (for messages).
function dist.world_rank() return world_rank end

function dist.barrier()
  if multi() then mpi.barrier() end
end

local OPS = {sum = true, max = true, min = true, prod = true}
local function check_op(who, op)
  op = op or 'sum'
  if not OPS[op] then
    error(fmt("%s: op must be 'sum', 'max', 'min' or 'prod', got '%s'", who, tostring(op)), 0)
  end
  return op
end

local function check_root(who, root)
  root = root or 0
  if math.type(root) ~= 'integer' or root < 0 or root >= dist.size() then
    error(fmt('%s: root must be a rank in [0, %d], got %s', who, dist.size() - 1,
              tostring(root)), 0)
  end
  return root
end

local function is_buffer(x)
  if agop.is_tensor(x) then return true end
  local mt = type(x) == 'userdata' and getmetatable(x)
  return type(mt) == 'table' and mt.__name == 'agop.DMatrix'
end

local function check_buffer(who, x)
  if not is_buffer(x) then
    error(fmt('%s: expected a tensor or an agop.DMatrix, got %s', who, type(x)), 0)
  end
  if agop.is_tensor(x) and not x:is_contiguous() then
    error(fmt('%s: the tensor (%s) must be contiguous: it is updated in place', who,
              table.concat(x:size(), 'x')), 0)
  end
end

--- allreduce(x [, op]): x a tensor/DMatrix (in place, returned), a number or a list of
--- numbers (the reduced value or list is returned).
function dist.allreduce(x, op)
  local who = 'dist.allreduce'
  op = check_op(who, op)
  if type(x) == 'number' then
    return multi() and mpi.allreduce_numbers(op, x) or x
  elseif type(x) == 'table' then
    for i = 1, #x do
      if type(x[i]) ~= 'number' then
        error(fmt('%s: a list must hold numbers only, item %d is %s', who, i, type(x[i])), 0)
      end
    end
    if not multi() then return table.move(x, 1, #x, 1, {}) end
    return {mpi.allreduce_numbers(op, table.unpack(x))}
  end
  check_buffer(who, x)
  if multi() then mpi.allreduce(x, op) end
  return x
end

function dist.reduce(x, op, root)
  local who = 'dist.reduce'
  op, root = check_op(who, op), check_root(who, root)
  check_buffer(who, x)
  if multi() then mpi.reduce(x, op, root) end
  return x
end

function dist.broadcast(x, root)
  local who = 'dist.broadcast'
  root = check_root(who, root)
  if is_buffer(x) then
    check_buffer(who, x)
    if multi() then mpi.broadcast(x, root) end
    return x
  end
  if not multi() then return x end
  local text = dist.rank() == root and json.encode(x) or nil
  return json.decode(mpi.broadcast_string(text, root))
end

--- gather_table(v [, root]) -> {v_0, ..., v_(p-1)} on root (rank r's value at index r+1),
--- nil on the other ranks. v travels as JSON: use it for small Lua values.
function dist.gather_table(v, root)
  local who = 'dist.gather_table'
  root = check_root(who, root)
  local ok, text = pcall(json.encode, v == nil and json.null or v)
  if not ok then error(fmt('%s: %s', who, tostring(text)), 0) end
  if not multi() then return {v} end
  local parts = mpi.gather_strings(text, root)
  if not parts then return nil end
  local out = {}
  for r, s in ipairs(parts) do
    local val = json.decode(s)
    if val == json.null then val = nil end
    out[r] = val
  end
  return out
end

--- shard(n [, rank, size]) -> first, count: the contiguous block of 1..n that `rank` (of
--- `size`) takes; the first n % size ranks take one more. count may be 0.
function dist.shard(n, rank, size)
  rank, size = rank or dist.rank(), size or dist.size()
  local base, extra = n // size, n % size
  local first = rank * base + math.min(rank, extra) + 1
  return first, base + (rank < extra and 1 or 0)
end

--- solo(fn, ...): runs fn(...) with this process as a one-rank world (rank 0 of size 1),
--- so that library calls inside it (train.fit, features.agop) make no collective calls.
--- Returns fn's results; errors pass through.
function dist.solo(fn, ...)
  solo_depth = solo_depth + 1
  local r = table.pack(pcall(fn, ...))
  solo_depth = solo_depth - 1
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

--- sweep(jobs, run_one, opts) -> done
--- Runs independent jobs on all ranks: jobs is a list of tables with a unique string
--- `key`; run_one(job, j) runs job j inside dist.solo on the rank it was handed to and
--- returns its result (a JSON value). opts:
---   key = 'key'      the field of a job that holds its unique string key
---   done = {}        results already known, by key (e.g. read from a file): skipped.
---                    Rank 0's table counts; the others' are ignored.
---   on_result = nil  function(key, result, job) called on rank 0 for each new result,
---                    in job order, as soon as rank 0 has it (e.g. to save a file)
--- Jobs go out in rounds of `size` (job i of a round to rank i - 1); after each round the
--- results are gathered on rank 0, so a stopped sweep loses at most one round, and
--- started again (with any number of ranks) runs only what is missing. Returns the
--- complete done table (every key) on every rank.
function dist.sweep(jobs, run_one, opts)
  local who = 'dist.sweep'
  opts = util.options(opts, {done = {}, on_result = false, key = 'key'}, who)
  local key = opts.key
  if type(jobs) ~= 'table' or type(run_one) ~= 'function' then
    error(who .. ': expected a list of jobs and a function run_one(job, j)', 0)
  end
  for j, job in ipairs(jobs) do
    if type(job) ~= 'table' or type(job[key]) ~= 'string' then
      error(fmt('%s: job %d has no string %s', who, j, key), 0)
    end
  end
  local done = dist.broadcast(dist.is_root() and opts.done or {}, 0)
  local pending = {}
  for j, job in ipairs(jobs) do
    if done[job[key]] == nil then pending[#pending + 1] = j end
  end
  local size, rank = dist.size(), dist.rank()
  for first = 1, #pending, size do
    local j = pending[first + rank]
    local mine = nil
    if j then mine = {j = j, result = dist.solo(run_one, jobs[j], j)} end
    local all = dist.gather_table(mine or json.null, 0)
    if all then
      for r = 1, size do
        local got = all[r]
        if got then
          local job = jobs[got.j]
          done[job[key]] = got.result
          if opts.on_result then opts.on_result(job[key], got.result, job) end
        end
      end
    end
  end
  return dist.broadcast(dist.is_root() and done or {}, 0)
end

--- abort(message [, code]): prints message on stderr and ends every rank of the job.
function dist.abort(message, code)
  io.stderr:write(fmt('rank %d: %s\n', world_rank, tostring(message)))
  io.stderr:flush()
  if world_size > 1 then mpi.abort(code or 1) end
  os.exit(code or 1)
end

return dist
