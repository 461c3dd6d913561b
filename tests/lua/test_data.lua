-- agop.data and agop.read_idx: small IDX files written here (raw and gzip), corrupt ones,
-- the batch iterator, and the real MNIST / Fashion-MNIST files when `make data` has run.
local lu = require('luaunit')
local agop = require('agop')
local data = require('agop.data')

local helpers = require('helpers')
local errors_with, make_dir, write = helpers.errors_with, helpers.make_dir, helpers.write

-- pixel value of image i (1-based), row r, column c of the fake data set
local function pixel(i, r, c) return (i * 37 + r * 11 + c * 3) % 256 end

local function idx_images(n, h, w)
  local parts = {string.pack('>I4>I4>I4>I4', 0x0803, n, h, w)}
  for i = 1, n do
    local row = {}
    for r = 1, h do
      for c = 1, w do row[#row + 1] = string.char(pixel(i, r, c)) end
    end
    parts[#parts + 1] = table.concat(row)
  end
  return table.concat(parts)
end

local function idx_labels(n, bad_at)
  local parts = {string.pack('>I4>I4', 0x0801, n)}
  for i = 1, n do parts[#parts + 1] = string.char(i == bad_at and 11 or (i * 7) % 10) end
  return table.concat(parts)
end

-- a fake MNIST folder: <dir>/mnist/{train,t10k}-...; returns dir
local function fake_mnist(dir, n, opts)
  opts = opts or {}
  os.execute("mkdir -p '" .. dir .. "/mnist'")
  for _, split in ipairs({'train', 't10k'}) do
    write(dir .. '/mnist/' .. split .. '-images-idx3-ubyte', idx_images(n, 5, 4))
    write(dir .. '/mnist/' .. split .. '-labels-idx1-ubyte', idx_labels(opts.labels or n, opts.bad_at))
  end
  return dir
end

TestReadIdx = {}

function TestReadIdx:setUp() self.dir = make_dir() end
function TestReadIdx:tearDown() os.execute("rm -rf '" .. self.dir .. "'") end

function TestReadIdx:test_raw_values_and_dims()
  local p = self.dir .. '/img'
  write(p, idx_images(3, 5, 4))
  local t, dims = agop.read_idx(p)
  lu.assertEquals(dims, {3, 5, 4})
  lu.assertEquals(t:size(), {3, 5, 4})
  for i = 1, 3 do
    for r = 1, 5 do
      for c = 1, 4 do lu.assertEquals(t:get(i, r, c), pixel(i, r, c)) end
    end
  end
  local u, udims = agop.read_idx(p, {limit = 2, channel = true})
  lu.assertEquals(udims, {3, 5, 4}) -- the header's sizes, all items
  lu.assertEquals(u:size(), {2, 1, 5, 4})
  lu.assertEquals(u:get(2, 1, 5, 4), pixel(2, 5, 4))
end

function TestReadIdx:test_pad_then_normalize_like_torchvision()
  local p = self.dir .. '/img'
  write(p, idx_images(2, 5, 4))
  local mean, std = 0.1307, 0.3081
  local t = agop.read_idx(p, {pad = 2, mean = mean, std = std, channel = true})
  lu.assertEquals(t:size(), {2, 1, 9, 8})
  for i = 1, 2 do
    for r = 1, 9 do
      for c = 1, 8 do
        local inside = r > 2 and r <= 7 and c > 2 and c <= 6
        local raw = inside and pixel(i, r - 2, c - 2) or 0
        lu.assertAlmostEquals(t:get(i, 1, r, c), (raw / 255 - mean) / std, 1e-6)
      end
    end
  end
end

function TestReadIdx:test_gzip_and_errors()
  local p = self.dir .. '/img'
  write(p, idx_images(4, 3, 3))
  assert(os.execute("gzip -k '" .. p .. "'"))
  local a, b = agop.read_idx(p), agop.read_idx(p .. '.gz')
  lu.assertTrue(a:equal(b))
  write(self.dir .. '/lab', idx_labels(6, 4))
  errors_with('lab: label 11 at item 3 is out of range 0..9', agop.read_idx, self.dir .. '/lab',
    {max_label = 9})
  write(self.dir .. '/short', idx_labels(6):sub(1, -3))
  errors_with('short: header says 6 items, file holds 4', agop.read_idx, self.dir .. '/short')
  errors_with('No such file', agop.read_idx, self.dir .. '/none')
  errors_with("unknown option 'limt'", agop.read_idx, p, {limt = 1})
  errors_with('give both mean and std', agop.read_idx, p, {mean = 0.5})
  errors_with('pad needs items of at least 2 dimensions', agop.read_idx, self.dir .. '/lab',
    {pad = 1})
  errors_with('limit must be an integer', agop.read_idx, p, {limit = -1})
end

function TestReadIdx:test_pad_refuses_empty_images()
  -- found by the idx fuzz harness: 3 images of 0 x 469762048 pixels (a 16-byte file) with
  -- pad = 2 asked for 3 x 4 x 469762052 floats (22 GB) of border around no data at all
  local p = self.dir .. '/empty'
  write(p, string.pack('>I4>I4>I4>I4', 0x0803, 3, 0, 1000))
  lu.assertEquals(agop.read_idx(p):size(), {3, 0, 1000}) -- without pad: empty, fine
  errors_with('pad needs images of at least 1x1 pixels, the file holds 0x1000',
    agop.read_idx, p, {pad = 2})
  write(p, string.pack('>I4>I4>I4>I4', 0x0803, 3, 1000, 0))
  errors_with('holds 1000x0', agop.read_idx, p, {pad = 1, limit = 1})
end

TestData = {}

function TestData:setUp() self.dir = make_dir() end
function TestData:tearDown() os.execute("rm -rf '" .. self.dir .. "'") end

function TestData:test_load_fake_mnist_pads_and_normalizes()
  fake_mnist(self.dir, 7)
  local s = data.load('mnist', 'train', {dir = self.dir})
  lu.assertEquals(s.n, 7)
  lu.assertEquals(s.images:size(), {7, 1, 9, 8})
  lu.assertEquals(s.labels:size(), {7})
  lu.assertEquals(s.name, 'mnist')
  lu.assertEquals(s.split, 'train')
  local bg = -0.1307 / 0.3081
  lu.assertAlmostEquals(s.images:get(1, 1, 1, 1), bg, 1e-6)
  lu.assertAlmostEquals(s.images:get(7, 1, 9, 8), bg, 1e-6)
  lu.assertAlmostEquals(s.images:get(3, 1, 4, 5), (pixel(3, 2, 3) / 255 - 0.1307) / 0.3081, 1e-6)
  for i = 1, 7 do lu.assertEquals(s.labels:get(i), (i * 7) % 10) end
  -- options: limit, no padding, no normalization, custom normalization
  local t = data.load('mnist', 'test', {dir = self.dir, limit = 3, pad = 0, normalize = false})
  lu.assertEquals(t.images:size(), {3, 1, 5, 4})
  lu.assertAlmostEquals(t.images:get(2, 1, 5, 4), pixel(2, 5, 4) / 255, 1e-7)
  local u = data.load('mnist', 'test', {dir = self.dir, pad = 1, normalize = {mean = 0.5, std = 2}})
  lu.assertAlmostEquals(u.images:get(1, 1, 1, 1), -0.25, 1e-7)
  -- gzip-compressed files are found too
  assert(os.execute("gzip '" .. self.dir .. "/mnist/train-images-idx3-ubyte'"))
  local z = data.load('mnist', 'train', {dir = self.dir})
  lu.assertTrue(z.images:equal(s.images))
  lu.assertStrContains(z.files.images, '.gz')
end

function TestData:test_missing_and_corrupt_data_say_how_to_fix()
  local err = errors_with('make data', data.load, 'mnist', 'train', {dir = self.dir})
  lu.assertStrContains(err, 'MNIST train images not found')
  lu.assertStrContains(err, self.dir .. '/mnist/train-images-idx3-ubyte')
  fake_mnist(self.dir, 5, {labels = 4})
  errors_with('5 images but 4 labels; run `make data`', data.load, 'mnist', 'train',
    {dir = self.dir})
  fake_mnist(self.dir, 5, {bad_at = 2})
  errors_with('label 11 at item 1 is out of range 0..9', data.load, 'mnist', 'test',
    {dir = self.dir})
  fake_mnist(self.dir, 5)
  write(self.dir .. '/mnist/train-images-idx3-ubyte', idx_images(5, 5, 4):sub(1, -2))
  err = errors_with('train-images-idx3-ubyte: header says 5 items of 20 bytes', data.load, 'mnist',
    'train', {dir = self.dir})
  lu.assertStrContains(err, 'make data')
  errors_with("unknown data set 'mnst' (did you mean 'mnist'?)", data.load, 'mnst', 'train')
  errors_with("split must be 'train' or 'test'", data.load, 'mnist', 'valid')
  errors_with("unknown option 'limt'", data.load, 'mnist', 'train', {limt = 3})
  errors_with('pad must be an integer', data.load, 'mnist', 'train', {pad = -1, dir = self.dir})
  errors_with('limit must be a non-negative integer', data.load, 'mnist', 'train',
    {limit = 2.5, dir = self.dir})
end

function TestData:test_batches_cover_every_item_once_and_are_reproducible()
  fake_mnist(self.dir, 10)
  local s = data.load('mnist', 'train', {dir = self.dir, pad = 0})
  local function epoch(opts)
    local order, sizes, n_seen = {}, {}, nil
    for x, y, i, nb in data.batches(s, 4, opts) do
      lu.assertEquals(i, #sizes + 1)
      n_seen = nb
      sizes[#sizes + 1] = x:size(1)
      lu.assertEquals(x:size(), {x:size(1), 1, 5, 4})
      lu.assertEquals(y:size(), {x:size(1)})
      for k = 1, x:size(1) do
        -- identify the item by its first pixel, and check its label travelled with it
        local id
        for j = 1, s.n do
          if s.images:get(j, 1, 1, 1) == x:get(k, 1, 1, 1) then id = j end
        end
        lu.assertNotNil(id)
        lu.assertTrue(x:select(1, k):equal(s.images:select(1, id)))
        lu.assertEquals(y:get(k), s.labels:get(id))
        order[#order + 1] = id
      end
    end
    return order, sizes, n_seen
  end
  local o1, sizes, nb = epoch({generator = agop.Generator(5)})
  lu.assertEquals(sizes, {4, 4, 2})
  lu.assertEquals(nb, 3)
  local sorted = {table.unpack(o1)}
  table.sort(sorted)
  lu.assertEquals(sorted, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
  lu.assertNotEquals(o1, sorted) -- shuffled (this seed does not give the identity)
  lu.assertEquals(epoch({generator = agop.Generator(5)}), o1) -- same seed, same order
  local g = agop.Generator(5)
  local e1, e2 = epoch({generator = g}), epoch({generator = g})
  lu.assertNotEquals(e1, e2) -- the next epoch reshuffles
  local plain, psizes = epoch({shuffle = false, drop_last = true})
  lu.assertEquals(plain, {1, 2, 3, 4, 5, 6, 7, 8})
  lu.assertEquals(psizes, {4, 4})
  -- batches are fresh copies: writing into one leaves the set alone
  for x in data.batches(s, 3, {shuffle = false}) do x:fill(99) end
  lu.assertAlmostEquals(s.images:get(1, 1, 1, 1), (pixel(1, 1, 1) / 255 - 0.1307) / 0.3081, 1e-6)
  errors_with('batch_size must be a positive integer', data.batches, s, 0)
  errors_with("unknown option 'shufle'", data.batches, s, 2, {shufle = true})
end

-- ===================================================================================
TestRealData = {}

local function real(name, split, opts)
  local ok = pcall(data.files, name, split)
  if not ok then lu.skip(name .. ' ' .. split .. ' not present (run make data)') end
  return data.load(name, split, opts)
end

function TestRealData:test_mnist_train_first_100()
  local s = real('mnist', 'train', {limit = 100})
  lu.assertEquals(s.images:size(), {100, 1, 32, 32})
  lu.assertEquals(s.labels:size(), {100})
  lu.assertEquals(s.total, 60000)
  lu.assertEquals(s.labels:narrow(1, 1, 10):totable(), {5, 0, 4, 1, 9, 2, 1, 3, 1, 4})
  lu.assertTrue(s.labels:min() >= 0 and s.labels:max() <= 9)
  -- the 2-pixel border equals the normalized background, -0.1307 / 0.3081
  local bg = -0.1307 / 0.3081
  local border = {s.images:narrow(3, 1, 2), s.images:narrow(3, 31, 2),
    s.images:narrow(4, 1, 2), s.images:narrow(4, 31, 2)}
  for _, b in ipairs(border) do
    lu.assertAlmostEquals(b:max(), bg, 1e-6)
    lu.assertAlmostEquals(b:min(), bg, 1e-6)
  end
  -- inside, the values are the raw bytes normalized
  local raw = agop.read_idx(s.files.images, {limit = 100})
  lu.assertAlmostEquals(s.images:get(1, 1, 3 + 14, 3 + 14), (raw:get(1, 15, 15) / 255 - 0.1307) / 0.3081, 1e-6)
  local d = (s.images:narrow(3, 3, 28):narrow(4, 3, 28):reshape(100, 28, 28) * 0.3081 + 0.1307)
    * 255 - raw
  lu.assertTrue(d:abs():max() < 1e-3)
end

function TestRealData:test_mnist_raw_mean_is_plausible()
  real('mnist', 'test', {limit = 1})
  local ipath = data.files('mnist', 'train')
  local raw = agop.read_idx(ipath, {limit = 1000})
  lu.assertEquals(raw:size(), {1000, 28, 28})
  local mean = raw:mean()
  -- the whole training set's mean pixel is 0.1307 * 255 = 33.3; the first 1000: 32.7
  lu.assertTrue(mean > 30 and mean < 36, 'mean pixel ' .. mean)
  lu.assertEquals(raw:min(), 0)
  lu.assertEquals(raw:max(), 255)
  local t = real('mnist', 'test')
  lu.assertEquals(t.images:size(), {10000, 1, 32, 32})
  lu.assertEquals(t.labels:narrow(1, 1, 3):totable(), {7, 2, 1})
end

function TestRealData:test_fashion_mnist()
  local s = real('fashion-mnist', 'train', {limit = 10, pad = 0})
  lu.assertEquals(s.images:size(), {10, 1, 28, 28})
  lu.assertEquals(s.labels:totable(), {9, 0, 0, 3, 0, 2, 7, 2, 5, 5})
  lu.assertAlmostEquals(s.mean, 0.2860, 1e-9)
  local t = real('fashion-mnist', 'test', {limit = 5})
  lu.assertEquals(t.images:size(), {5, 1, 32, 32})
  lu.assertAlmostEquals(t.images:get(1, 1, 1, 1), -0.2860 / 0.3530, 1e-6)
end

-- the one batching iterator (data.batches and train.fit): positions of `order`, a start
-- batch, and each rank's shard of a batch, which together are the whole batch
function TestData:test_batch_indices_shards_and_start()
  local order = {5, 3, 1, 2, 4, 7, 6}
  local seen = {}
  for b, idx, m, nb in data.batch_indices(7, 3, {order = order}) do
    lu.assertEquals(nb, 3)
    lu.assertEquals(m, b < 3 and 3 or 1)
    for _, i in ipairs(idx) do seen[#seen + 1] = i end
  end
  lu.assertEquals(seen, order)
  local bs = {}
  for b, idx in data.batch_indices(7, 3, {from = 3}) do bs[#bs + 1] = {b, idx} end
  lu.assertEquals(bs, {{3, {7}}})
  lu.assertEquals(#bs, 1)
  for _, drop in ipairs({false, true}) do
    local n = 0
    for _ in data.batch_indices(7, 3, {drop_last = drop}) do n = n + 1 end
    lu.assertEquals(n, drop and 2 or 3)
  end
  -- 3 ranks: the shards of every batch, in rank order, are the batch
  for b, whole in data.batch_indices(7, 3, {order = order}) do
    local joined = {}
    for r = 0, 2 do
      local nxt = data.batch_indices(7, 3, {order = order, from = b, rank = r, size = 3})
      local b2, idx, m = nxt()
      lu.assertEquals(b2, b)
      lu.assertEquals(m, #whole)
      for _, i in ipairs(idx) do joined[#joined + 1] = i end
    end
    lu.assertEquals(joined, whole)
  end
  errors_with("unknown option 'form'", data.batch_indices, 7, 3, {form = 2})
end
