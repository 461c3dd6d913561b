-- API fuzz for the bindings: every agop.* function, every Tensor, Generator, Canvas and
-- DMatrix method and the Tensor metamethods, called with hostile arguments drawn from a
-- fixed seed - views with size-1 and zero dimensions, a 0-dimensional tensor, NaN,
-- infinities, negative and huge numbers, wrong types, tensors of other shapes - and with
-- valid calls (seeds) mutated one or two arguments at a time or laid out with other
-- strides. Bad input must get a Lua error with a message, never a signal; under
-- `make asan` any out-of-bounds access aborts the run. Every tensor a call returns is
-- read whole, so a result that lies about its size shows under ASan too.
--   AGOP_FUZZ_CALLS=N  calls per function (default 40)
--   AGOP_FUZZ_SEED=S   another seed (default 11)
--   AGOP_FUZZ_VERBOSE=1  print, per function, how many calls succeeded
local lu = require('luaunit')
local agop = require('agop')
local helpers = require('helpers')

local CALLS = math.tointeger(tonumber(os.getenv('AGOP_FUZZ_CALLS') or '')) or 40
local SEED = math.tointeger(tonumber(os.getenv('AGOP_FUZZ_SEED') or '')) or 11
local VERBOSE = os.getenv('AGOP_FUZZ_VERBOSE') == '1'
local NAN, INF = 0 / 0, math.huge

-- functions that write the file named by their first argument: it is always a path in
-- the test's own folder (or one that cannot exist)
local WRITES = {write_atomic = true, save = true, ['Canvas:save'] = true}
-- functions left out: none of them is a binding, and each would spoil the run's output
local SKIP = {show = true}

local dir -- the temporary folder of the run

-- The hostile values, made afresh for every function (calls may change them in place).
local function make_pool()
  agop.manual_seed(SEED)
  local garbage = dir .. '/garbage.bin'
  local scalar_file = dir .. '/scalar.bin'
  local scalar = agop.read_raw(scalar_file, 0, 'F32', {}) -- the only 0-dim tensor
  local tensors = {
    agop.rand(3, 4),
    agop.rand(1, 3, 4):narrow(2, 1, 2),          -- size-1 dim keeping its base's stride
    agop.rand(1, 3, 4):narrow(2, 2, 2):narrow(3, 2, 2), -- and not contiguous
    agop.rand(4, 5):t(),                         -- transposed
    agop.rand(6):view(2, 3):narrow(1, 2, 1):t(), -- 3x1, column of a row
    agop.zeros(0), agop.zeros(2, 0, 3), agop.zeros(0, 4), agop.rand(3, 4):narrow(2, 2, 0),
    agop.rand(2, 3, 8, 8), agop.rand(4, 3, 3, 3), agop.rand(1, 1, 5, 5),
    agop.rand(2, 3, 8, 8):narrow(4, 2, 5), agop.rand(1, 3, 8, 8):narrow(1, 1, 1),
    agop.rand(4), agop.rand(1), agop.rand(7), agop.tensor{0, 1, 2, 9},
    agop.tensor{-1, 10, 0.5, NAN}, agop.full(NAN, 3, 3), agop.full(INF, 2, 2),
    agop.full(-INF, 4), agop.rand(2, 2, 2, 2, 2, 2, 2, 2), agop.rand(10, 1),
    agop.rand(5, 5), agop.rand(9, 9):narrow(1, 2, 3):narrow(2, 4, 3), agop.rand(2, 3):select(1, 2),
    agop.rand(3, 1, 1, 3), agop.ones(1, 1, 1, 1), agop.rand(6, 6):narrow(1, 1, 6):t(),
    scalar,
  }
  -- no size between 33 and the limits: a valid but huge call would only cost memory
  local numbers = {0, 1, 2, 3, 4, -1, -2, 0.5, -0.5, 1.5, 7, 33, 1e300, -1e300, INF, -INF,
    NAN, math.maxinteger, math.mininteger, 1 << 62, 1 << 41, -(1 << 41), 1e-310, 1, 2, 3, 1}
  local strings = {garbage, dir .. '/missing.npy', dir, '/nonexistent-dir/x.png',
    dir .. '/x.safetensors', 'F32', 'I64', 'BOOL', 'F16', 'viridis', 'gray_r', '#ff0000',
    'circle', '', 'nearest', '\0', string.rep('x', 300), 'sgd', 'C3', 'none'}
  local boom = setmetatable({}, {__index = function() error('boom') end,
    __len = function() return 3 end})
  local deep = {}
  local d = deep
  for _ = 1, 40 do d[1] = {}; d = d[1] end
  local tables = {{}, {1, 2, 3}, {2, 3}, {0}, {-1}, {NAN}, {1e300}, {{1, 2}, {3, 4}},
    {{1}, {2, 3}}, {limit = 2}, {pad = 3, mean = 0.1, std = 0.3}, {limit = -1},
    {tensors[1]}, {tensors[1], 'F64'}, {tensors[2], 'I64'}, {'a', 'b'}, boom, deep,
    {name = 'x', tensor = tensors[2]}, {1, 'x'}, {fill = 'red', width = NAN},
    {cmap = 'nope', vmin = NAN, vmax = INF}, {scale = 1e300, rotate = 45},
    {1, 2, 3, 4, 5, 6, 7, 8, 9}, {x = tensors[1]}, {0, 1 << 41}}
  local others = {nil, true, false, function() error('from a callback') end,
    agop.Generator(3), coroutine.create(function() end), io.stdout, agop.Canvas(12, 9)}
  local v = { -- operands of valid calls, for the seeds below
    x4 = agop.rand(2, 3, 8, 8), w4 = agop.rand(4, 3, 3, 3), b4 = agop.rand(4),
    gy4 = agop.rand(2, 4, 8, 8), x2 = agop.rand(5, 6), w2 = agop.rand(7, 6), b2 = agop.rand(7),
    gy2 = agop.rand(5, 7), g3 = agop.rand(3), logits = agop.rand(4, 10),
    labels = agop.tensor{0, 1, 2, 9}, m27 = agop.rand(27, 27),
    x3 = agop.rand(3, 8, 8), img = agop.rand(6, 5),
    -- batches of one, whose leading size-1 dimension restride() gives odd strides
    x41 = agop.rand(1, 3, 8, 8), w41 = agop.rand(1, 3, 3, 3), x21 = agop.rand(1, 6),
    logits1 = agop.rand(1, 10), label1 = agop.tensor{3},
  }
  local a = agop.rand(5, 5)
  v.sym = agop.mm(a, a:t())
  v.pooled, v.pidx = agop.maxpool2d(v.x4, 2, 2, 0)
  v.gpool = agop.rand(2, 3, 4, 4)
  v.S = agop.dmatrix(4)
  v.S4 = agop.ones(4, 4) -- S as a (symmetric) tensor
  v.files = {idx = dir .. '/ok-idx3-ubyte', png = dir .. '/ok.png', st = dir .. '/ok.safetensors',
    npy = dir .. '/ok.npy', raw = garbage}
  return {tensors = tensors, numbers = numbers, strings = strings, tables = tables,
    others = others, nothers = 8, v = v}
end

local function pick(list, n) return list[math.random(n or #list)] end

-- one argument: a tensor half of the time, else any kind of value
local function any(pool)
  local r = math.random()
  if r < 0.45 then return pick(pool.tensors) end
  if r < 0.72 then return pick(pool.numbers) end
  if r < 0.80 then return pick(pool.strings) end
  if r < 0.92 then return pick(pool.tables) end
  return pool.others[math.random(pool.nothers)]
end

-- Valid calls, one list of arguments each (self first for methods): the fuzz mutates
-- them, so that hostile values reach past the first argument check.
local function seeds(p)
  local v, f = p.v, p.v.files
  local state = agop.Generator(9):get_state()
  return {
    relu = {{v.x4}}, relu_backward = {{v.x4, v.x4}}, softmax = {{v.logits}, {v.logits1}},
    log_softmax = {{v.logits}}, cross_entropy = {{v.logits, v.labels}, {v.logits1, v.label1}},
    dropout = {{v.x2, 0.5, agop.Generator(1)}, {v.x2, 0.5}},
    batchnorm2d = {{v.x4, v.g3, v.g3, agop.zeros(3), agop.ones(3), true, 0.1, 1e-5},
      {v.x4, nil, nil, agop.zeros(3), agop.ones(3), false}},
    batchnorm2d_backward = {{v.x4, v.g3, v.x4, agop.rand(3), agop.rand(3), agop.zeros(3),
      agop.zeros(3), true}},
    conv2d = {{v.x4, v.w4, v.b4, 1, 1}, {v.x4, v.w4, nil, 2, 0}, {v.x41, v.w4, v.b4, 1, 1},
      {v.x41, v.w41, nil, 1, 0}},
    conv2d_shape = {{v.x4, v.w4, 1, 1}, {v.x41, v.w41, 2, 0}},
    conv2d_backward = {{v.x4, v.w4, v.gy4, 1, 1, agop.zeros(4, 3, 3, 3), agop.zeros(4), true}},
    linear = {{v.x2, v.w2, v.b2}, {v.x2, v.w2}, {v.x21, v.w2, v.b2}},
    linear_backward = {{v.x2, v.w2, v.gy2, agop.zeros(7, 6), agop.zeros(7), true}},
    maxpool2d = {{v.x4, 2, 2, 0}, {v.x4, 3, 1, 1}, {v.x41, 2, 2, 0}},
    maxpool2d_backward = {{v.x4, v.pidx, v.gpool}},
    avgpool2d = {{v.x4, 2, 2, 0}, {v.x4, 3, 2, 1}},
    avgpool2d_backward = {{v.x4, v.gpool, 2, 2, 0}},
    adaptive_avgpool2d = {{v.x4, 3, 3}}, adaptive_avgpool2d_backward = {{v.x4, agop.rand(2, 3, 3, 3)}},
    eig = {{v.sym}}, matpow = {{v.sym, 0.5}}, nfm = {{v.w4}}, dmatrix = {{4}},
    agop_accumulate = {{v.S, v.gy4}, {v.S, v.gy4:narrow(1, 1, 1)}},
    agop_finish = {{v.S, v.w4, 2}, {v.S4, v.w4, 2}},
    agop_pow = {{v.S, v.w4, 2, 0.5}, {v.S4, v.w4, 2, 0.5}}, corr = {{v.x2, v.x2 * 2}}, cosine = {{v.x2, v.x2}},
    feature_map = {{v.m27, v.x3, 3, 1}, {v.m27, v.x41, 3, 1}},
    tensor = {{{{1, 2}, {3, 4}}}}, from_table = {{{1, 2, 3, 4, 5, 6}, 2, 3}},
    zeros = {{2, 3}}, ones = {{{2, 3}}}, full = {{1.5, 2, 2}}, zeros_like = {{v.x2}},
    arange = {{1, 5, 0.5}}, rand = {{agop.Generator(2), 3, 2}}, randn = {{2, 2}},
    Generator = {{7}}, manual_seed = {{3}}, dot = {{v.b2, v.b2}}, mm = {{v.x2, v.w2:t()}},
    allclose = {{v.x2, v.x2, 1e-5, 1e-8}}, is_tensor = {{v.x2}},
    read_raw = {{f.raw, 8, 'F16', {4, 2}}, {f.raw, 0, 'I64', {}}},
    read_idx = {{f.idx, {limit = 2, pad = 1, mean = 0.1, std = 0.3, channel = true}}},
    read_png = {{f.png}}, load = {{f.st}, {f.npy}},
    write_atomic = {{dir .. '/w.bin', {'head', v.b2, {v.labels, 'I64'}}}},
    save = {{dir .. '/s.npy', v.x2}, {dir .. '/s.safetensors', {a = v.x2}, {k = 'v'}}},
    file_size = {{f.raw}}, set_threads = {{1}}, colormap = {{'viridis', 0.3}},
    text_size = {{'abc', {scale = 2}}}, Canvas = {{20, 10, {bg = '#ffffff'}}},
    finite_range = {{v.x2}},
    ['Generator:seed'] = {{agop.Generator(1), 4}},
    ['Generator:set_state'] = {{agop.Generator(1), state}},
    ['Generator:random'] = {{agop.Generator(1), 6}},
    ['Generator:permutation'] = {{agop.Generator(1), 5}},
    ['Canvas:rect'] = {{agop.Canvas(16, 12), 1, 1, 5, 5, 'red'},
      {agop.Canvas(16, 12), 0, 0, 8, 8, {fill = 'C1', stroke = 'black', width = 2}}},
    ['Canvas:line'] = {{agop.Canvas(16, 12), 0, 0, 10, 10, 'blue', 2}},
    ['Canvas:polyline'] = {{agop.Canvas(16, 12), {0, 5, 10}, agop.tensor{0, 5, 2}, 'C1', 1}},
    ['Canvas:polygon'] = {{agop.Canvas(16, 12), {0, 5, 10}, {0, 9, 2}, 'C2'}},
    ['Canvas:marker'] = {{agop.Canvas(16, 12), 5, 5, 'circle', 4, 'red'}},
    ['Canvas:text'] = {{agop.Canvas(16, 12), 2, 2, 'hi', {scale = 1, rotate = 90}}},
    ['Canvas:text_size'] = {{agop.Canvas(16, 12), 'hi', {scale = 2}}},
    ['Canvas:blit'] = {{agop.Canvas(16, 12), v.img, 0, 0, 8, 8, {cmap = 'viridis'}},
      {agop.Canvas(16, 12), agop.rand(3, 4, 4), 1, 1, 12, 9}},
    ['Canvas:save'] = {{agop.Canvas(16, 12), dir .. '/c.png'}},
    ['Canvas:get'] = {{agop.Canvas(16, 12), 1, 1}},
    ['Canvas:clip'] = {{agop.Canvas(16, 12), 1, 1, 5, 5}},
    ['DMatrix:add'] = {{agop.dmatrix(4), agop.rand(4, 4)}, {agop.dmatrix(4), agop.dmatrix(4)}},
    ['DMatrix:get'] = {{agop.dmatrix(4), 2, 3}}, ['DMatrix:tensor'] = {{agop.dmatrix(4), 2}},
    ['Tensor:narrow'] = {{v.x4, 2, 2, 1}}, ['Tensor:select'] = {{v.x4, 3, 8}},
    ['Tensor:transpose'] = {{v.x4, 1, 4}}, ['Tensor:view'] = {{v.x2, 3, -1}},
    ['Tensor:reshape'] = {{v.x4:transpose(1, 2), -1, 8}},
    ['Tensor:index_select'] = {{v.x4, 1, {2, 1, 2}}, {v.x2, 1, agop.tensor{5, 1}},
      {v.x41, 1, {1, 1}}, {v.x21, 1, {1}}},
    ['Tensor:get'] = {{v.x2, 5, 6}}, ['Tensor:set'] = {{v.x2:clone(), 1, 2, 7}},
    ['Tensor:copy'] = {{v.x2:clone(), v.x2:t():t()}}, ['Tensor:mm'] = {{v.x2, v.w2:t()}},
    ['Tensor:addcmul_'] = {{v.x2:clone(), v.x2, v.x2, 0.5}},
    ['Tensor:addcdiv_'] = {{v.x2:clone(), v.x2, v.x2 + 1, 0.5}},
    ['Tensor:normal_'] = {{v.x2:clone(), 0, 1}}, ['Tensor:uniform_'] = {{v.x2:clone(), 0, 1}},
    ['Tensor:eig'] = {{v.sym}}, ['Tensor:matpow'] = {{v.sym, 0.5}},
    ['Tensor:sum'] = {{v.x4, 2}}, ['Tensor:max'] = {{v.x4, 4}}, ['Tensor:argmax'] = {{v.x2, 2}},
    ['Tensor:clamp'] = {{v.x2, 0.2, 0.7}}, ['Tensor:add'] = {{v.x4, agop.rand(8), 2}},
    ['Tensor:fill'] = {{v.x2:clone(), 3}}, ['Tensor:size'] = {{v.x4, -1}},
  }
end

-- The same values in the same shape, laid out otherwise: when the shape starts with
-- size-1 dimensions, a contiguous view whose size-1 dimensions have strides that are not
-- the product of the later sizes (what broke index_select); else a view that is not
-- contiguous (or, padding the first dimension, contiguous at an offset).
local function restride(t)
  if not agop.is_tensor(t) or t:dim() == 0 then return t end
  local sizes = t:size()
  local f = 1
  while f < #sizes and sizes[f] == 1 do f = f + 1 end
  local d = f > 1 and f or math.random(#sizes)
  local base_sizes = {table.unpack(sizes)}
  base_sizes[d] = base_sizes[d] + 1
  local v = agop.full(-7, base_sizes):narrow(d, 2, sizes[d])
  return v:copy(t)
end

-- a hostile neighbour of a tensor: an empty or size-1 slice, a transposed or flattened
-- view, NaN values, an extra leading dimension
local function variant(t, pool)
  if not agop.is_tensor(t) or t:dim() == 0 then return any(pool) end
  local d = math.random(t:dim())
  local r = math.random(6)
  if r == 1 then return t:narrow(d, 1, 0) end
  if r == 2 and t:size(d) > 0 then return t:narrow(d, t:size(d), 1) end
  if r == 3 and t:dim() >= 2 then return t:transpose(d, d % t:dim() + 1) end
  if r == 4 then return t:clone():fill(NAN) end
  if r == 5 then return t:reshape(-1) end
  if t:dim() < 8 then
    local sizes = t:size()
    table.insert(sizes, 1, 1)
    return t:reshape(sizes)
  end
  return any(pool)
end

-- a seed call with one or two arguments replaced (or one dropped or added)
local function mutate(args, pool)
  local a, n = {}, args.n or #args
  for i = 1, n do a[i] = args[i] end
  if math.random() < 0.3 then -- the same call, other layouts
    for i = 1, n do a[i] = restride(a[i]) end
    return a, n
  end
  for _ = 1, math.random(2) do
    local r, i = math.random(), math.random(math.max(n, 1))
    if r < 0.45 then
      a[i] = variant(a[i], pool)
    elseif r < 0.85 then
      a[i] = any(pool)
    elseif r < 0.92 and n > 0 then
      n = n - 1
    else
      n = n + 1
      a[n] = any(pool)
    end
  end
  return a, n
end

-- every returned tensor is read whole (ASan sees a result that lies about its size)
local function touch(v, depth)
  depth = depth or 0
  if agop.is_tensor(v) then
    local c = v:clone()
    local _ = c:sum() + v:numel()
    tostring(v)
  elseif type(v) == 'table' and depth < 2 then
    for _, x in pairs(v) do touch(x, depth + 1) end
  end
end

local function check_error(name, err)
  lu.assertEquals(type(err), 'string', name .. ' raised a non-string error: ' .. tostring(err))
end

-- calls f CALLS times with 0..4 hostile arguments (self first when given), and as many
-- times with a mutated seed call when f has seeds
local function fuzz(name, f, self_kind, pool)
  local threads = agop.get_threads()
  local ok = 0
  local my_seeds = seeds(pool)[name]
  local total = my_seeds and 2 * CALLS or CALLS
  for c = 1, total do
    local args, n
    if c > CALLS then
      args, n = mutate(pick(my_seeds), pool)
    else
      args, n = {}, math.random(0, 4)
      for i = 1, n do args[i] = any(pool) end
      if self_kind then
        -- mostly a real self; sometimes the wrong type or nothing
        local r = math.random()
        table.insert(args, 1, r < 0.85 and self_kind() or any(pool))
        n = n + 1
      end
    end
    if WRITES[name] then
      args[1 + (self_kind and 1 or 0)] = pick({dir .. '/out.bin', dir .. '/out.npy',
        dir .. '/out.png', dir .. '/sub/none.bin', dir})
      n = math.max(n, 1 + (self_kind and 1 or 0))
    end
    local res = table.pack(pcall(f, table.unpack(args, 1, n)))
    if res[1] then
      ok = ok + 1
      for i = 2, res.n do touch(res[i]) end
    else
      check_error(name, res[2])
    end
    agop.set_threads(threads)
  end
  if VERBOSE then print(string.format('%-28s %4d of %d calls succeeded', name, ok, total)) end
end

local function sorted_keys(t)
  local keys = {}
  for k, v in pairs(t) do
    if type(k) == 'string' and type(v) == 'function' then keys[#keys + 1] = k end
  end
  table.sort(keys)
  return keys
end

TestApiFuzz = {}

function TestApiFuzz:setUp()
  math.randomseed(SEED)
  -- in memory when possible: the writes fsync, and a disk makes that the run's cost
  local p = io.popen('mktemp -d -p /dev/shm agop-fuzz-XXXXXX 2>/dev/null')
  dir = p:read('l')
  p:close()
  if not dir or dir == '' then dir = helpers.make_dir() end
  local bytes = {}
  for i = 1, 4096 do bytes[i] = string.char((i * 7919) % 256) end
  helpers.write(dir .. '/garbage.bin', table.concat(bytes))
  helpers.write(dir .. '/scalar.bin', string.pack('<f', 2.5))
  helpers.write(dir .. '/ok-idx3-ubyte', '\0\0\8\3' .. string.pack('>I4>I4>I4', 3, 4, 5)
    .. string.rep('\7', 60))
  agop.Canvas(7, 5):save(dir .. '/ok.png')
  agop.save(dir .. '/ok.safetensors', {a = agop.rand(2, 3)}, {k = 'v'})
  agop.save(dir .. '/ok.npy', agop.rand(3, 1, 2))
end

-- every seed is a valid call: else the fuzz would stop at the first argument check
function TestApiFuzz:test_the_seed_calls_succeed()
  local pool = make_pool()
  local methods = getmetatable(agop.zeros(1)).__methods
  local gen = getmetatable(agop.Generator(1)).__index
  local canvas = getmetatable(agop.Canvas(2, 2)).__index
  local dm = getmetatable(agop.dmatrix(1)).__index
  for name, list in pairs(seeds(pool)) do
    local kind, m = name:match('^(%a+):(.+)$')
    local f = kind == nil and agop[name]
      or ({Tensor = methods, Generator = gen, Canvas = canvas, DMatrix = dm})[kind][m]
    lu.assertNotNil(f, name)
    for i, args in ipairs(list) do
      local ok, err = pcall(f, table.unpack(args, 1, args.n or #args))
      lu.assertTrue(ok, string.format('seed %d of %s: %s', i, name, tostring(err)))
    end
  end
end

function TestApiFuzz:tearDown()
  os.execute("rm -rf '" .. dir .. "'")
end

function TestApiFuzz:test_every_module_function()
  local n = 0
  for _, name in ipairs(sorted_keys(agop)) do
    if not SKIP[name] then
      fuzz(name, agop[name], nil, make_pool())
      n = n + 1
    end
  end
  lu.assertTrue(n > 50, 'only ' .. n .. ' functions found')
end

function TestApiFuzz:test_every_tensor_method()
  local methods = getmetatable(agop.zeros(1)).__methods
  local n = 0
  for _, name in ipairs(sorted_keys(methods)) do
    local pool = make_pool()
    fuzz('Tensor:' .. name, methods[name], function() return pick(pool.tensors) end, pool)
    n = n + 1
  end
  lu.assertTrue(n > 60, 'only ' .. n .. ' methods found')
end

function TestApiFuzz:test_tensor_metamethods()
  local ops = {
    add = function(a, b) return a + b end, sub = function(a, b) return a - b end,
    mul = function(a, b) return a * b end, div = function(a, b) return a / b end,
    pow = function(a, b) return a ^ b end, unm = function(a) return -a end,
    len = function(a) return #a end, tostring = function(a) return tostring(a) end,
    eq = function(a, b) return a == b end, index = function(a, k) return a[k] end,
    newindex = function(a, k, v) a[k] = v end, close = function(a)
      local _ <close> = a
    end,
  }
  local names = sorted_keys(ops)
  for _, name in ipairs(names) do
    local pool = make_pool()
    fuzz('Tensor.__' .. name, ops[name], function() return pick(pool.tensors) end, pool)
  end
end

function TestApiFuzz:test_every_generator_and_canvas_method()
  local gen = getmetatable(agop.Generator(1)).__index
  for _, name in ipairs(sorted_keys(gen)) do
    local pool = make_pool()
    fuzz('Generator:' .. name, gen[name], function() return agop.Generator(5) end, pool)
  end
  local canvas = getmetatable(agop.Canvas(2, 2)).__index
  for _, name in ipairs(sorted_keys(canvas)) do
    local pool = make_pool()
    fuzz('Canvas:' .. name, canvas[name], function() return agop.Canvas(16, 12) end, pool)
  end
  local dm = getmetatable(agop.dmatrix(1)).__index
  for _, name in ipairs(sorted_keys(dm)) do
    local pool = make_pool()
    fuzz('DMatrix:' .. name, dm[name], function() return agop.dmatrix(4) end, pool)
  end
end
