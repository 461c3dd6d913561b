-- .npy and safetensors: round trips, the published byte layouts, corrupt files of every
-- kind (each must be a clear error, never a crash or a partial result), atomic writes,
-- and interchange with NumPy (and PyTorch, when importable) through /usr/bin/python3.
local lu = require('luaunit')
local agop = require('agop')
local files = require('agop.files')
local json = require('agop.json')

local PY = '/usr/bin/python3'

local helpers = require('helpers')
local errors_with, make_dir, write = helpers.errors_with, helpers.make_dir, helpers.write

local function slurp(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('a')
  f:close()
  return s
end

local function list_dir(d)
  local p = io.popen("ls -A '" .. d .. "'")
  local names = {}
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return names
end

-- little-endian float32 bytes of a Lua list
local function f32(values)
  local parts = {}
  for i, v in ipairs(values) do parts[i] = string.pack('<f', v) end
  return table.concat(parts)
end

-- a .npy file from its pieces (independent of agop.files' writer)
local function npy_bytes(dict, data, version)
  version = version or 1
  local pre = version == 1 and 10 or 12
  local total = pre + #dict + 1
  local h = dict .. string.rep(' ', (64 - total % 64) % 64) .. '\n'
  local len = version == 1 and string.pack('<I2', #h) or string.pack('<I4', #h)
  return '\x93NUMPY' .. string.char(version, 0) .. len .. h .. data
end

-- a safetensors file from a header table or text and raw data
local function st_bytes(header, data)
  local text = type(header) == 'string' and header or json.encode(header)
  return string.pack('<I8', #text) .. text .. data
end

-- python availability, probed once
local have_numpy, have_torch
local function probe()
  if have_numpy ~= nil then return end
  have_numpy = os.execute(PY .. ' -c "import numpy" >/dev/null 2>&1') == true
  -- find_spec, not import: importing torch takes seconds; the test itself imports it
  have_torch = have_numpy and os.execute(PY .. ' -c "import importlib.util as u, sys; '
    .. 'sys.exit(u.find_spec(\'torch\') is None)" >/dev/null 2>&1') == true
end

-- runs python code (argv[1..] = args); returns its output, or fails the test
local function python(dir, code, ...)
  local script = dir .. '/check.py'
  write(script, code)
  local args = {}
  for i, a in ipairs({...}) do args[i] = "'" .. a .. "'" end
  local p = io.popen(PY .. ' ' .. script .. ' ' .. table.concat(args, ' ') .. ' 2>&1')
  local out = p:read('a')
  local ok = p:close()
  lu.assertTrue(ok, 'python failed:\n' .. out)
  return out
end

local function assert_tensor_equals(t, sizes, values)
  lu.assertEquals(t:size(), sizes)
  local flat = t:numel() > 0 and t:reshape(t:numel()):totable() or {}
  if t:dim() == 0 then flat = {t:get()} end
  lu.assertEquals(#flat, #values)
  for i = 1, #values do lu.assertEquals(flat[i], values[i], 'element ' .. i) end
end

-- ===================================================================================
TestNpy = {}

function TestNpy:setUp() self.dir = make_dir() end
function TestNpy:tearDown() os.execute("rm -rf '" .. self.dir .. "'") end

function TestNpy:test_header_bytes_match_numpy_format()
  local p = self.dir .. '/a.npy'
  files.save_npy(p, agop.tensor{{1, 2, 3}, {4, 5, 6.5}})
  local want = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
    f32{1, 2, 3, 4, 5, 6.5})
  lu.assertEquals(slurp(p), want)
  lu.assertEquals((#want - 24) % 64, 0) -- data starts on a 64-byte boundary
  files.save_npy(p, agop.arange(3))
  lu.assertEquals(slurp(p), npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
    f32{0, 1, 2}))
  files.save_npy(p, agop.tensor{0.1, -2}, {dtype = 'f8'})
  lu.assertEquals(slurp(p), npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
    string.pack('<d<d', string.unpack('<f', string.pack('<f', 0.1)), -2)))
end

function TestNpy:test_round_trip_shapes_and_dtypes()
  local p = self.dir .. '/r.npy'
  local g = agop.Generator(3)
  for _, sizes in ipairs({{5}, {2, 3}, {2, 1, 3, 4}, {0, 3}, {1, 1, 1, 1, 1, 1, 1, 2}}) do
    local t = agop.randn(g, table.unpack(sizes))
    for _, dt in ipairs({'f4', 'f8'}) do
      files.save_npy(p, t, {dtype = dt})
      local u, descr = files.load_npy(p)
      lu.assertEquals(descr, dt == 'f4' and '<f4' or '<f8')
      lu.assertEquals(u:size(), t:size())
      lu.assertTrue(u:equal(t), 'values differ for ' .. table.concat(sizes, 'x') .. ' ' .. dt)
    end
  end
  -- a scalar
  write(p, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", f32{2.5}))
  local s = files.load_npy(p)
  lu.assertEquals(s:dim(), 0)
  lu.assertEquals(s:numel(), 1)
  -- a non-contiguous view is written in its logical (C) order
  local m = agop.tensor{{1, 2}, {3, 4}, {5, 6}}
  files.save_npy(p, m:t())
  assert_tensor_equals(files.load_npy(p), {2, 3}, {1, 3, 5, 2, 4, 6})
end

function TestNpy:test_reads_versions_2_and_3_and_python_style_headers()
  local p = self.dir .. '/v.npy'
  for _, v in ipairs({2, 3}) do
    write(p, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f32{7, 8}, v))
    assert_tensor_equals(files.load_npy(p), {2}, {7, 8})
  end
  -- key order, double quotes, no trailing comma, Python 2 longs: all legal
  write(p, npy_bytes('{"shape": (1L, 2L), "fortran_order": False, "descr": "<f8"}',
    string.pack('<d<d', 1.5, -3)))
  assert_tensor_equals(files.load_npy(p), {1, 2}, {1.5, -3})
end

function TestNpy:test_corrupt_files_are_clear_errors()
  local p = self.dir .. '/bad.npy'
  local ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
  local cases = {
    {'', 'not a .npy file'},
    {'PK\3\4 not numpy at all', 'not a .npy file'},
    {'\x93NUMPY\4\0\10\0{}', 'unsupported .npy format version 4.0'},
    {'\x93NUMPY\1\0\255\255{}', 'header length 65535 is larger than the file'},
    {'\x93NUMPY\2\0\0\0\1\0{}', 'header length 65536 is larger than the file'},
    {'\x93NUMPY\2\0\0\0\0\1{}', 'header length 16777216 is over the limit of 1048576'},
    {npy_bytes(ok_dict, f32{1}), 'needs 8 bytes of data, the file holds 4'},
    {npy_bytes(ok_dict, f32{1, 2, 3}), 'needs 8 bytes of data, the file holds 12'},
    {npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", f32{1, 2}),
      "dtype '>f4' (big-endian) is not supported"},
    {npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", f32{1, 2}),
      "dtype '<i4' is not supported"},
    {npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }", f32{1, 2}),
      'fortran_order=True is not supported'},
    {npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", f32{1, 2}),
      'structured dtypes are not supported'},
    {npy_bytes("{'descr': '<f4', 'shape': (2,), }", f32{1, 2}), "'fortran_order' must be"},
    {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", f32{1, 2}),
      "unknown key 'x'"},
    {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,-1), }", f32{1, 2}),
      'expected an integer in the shape'},
    {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2 }", f32{1, 2}),
      "expected ',' or ')'"},
    {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, }", f32{1, 2}),
      'expected an integer in the shape'},
    {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk", f32{1, 2}),
      'unexpected text after the dict'},
    {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,2), }",
      f32{1, 2}), '9 dimensions, at most 8'},
    {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999, 99999999), }",
      f32{1, 2}), 'is too large'},
    -- a 0 does not make the other sizes free
    {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 99999999, 99999999), }",
      ''), 'is too large (limit: 1099511627776 elements'},
    {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999, 0), }",
      ''), 'is too large'},
    -- a version 2 header over the cap, although the file holds it
    {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
      .. string.rep(' ', 1 << 20), f32{1, 2}, 2), 'over the limit of 1048576 bytes'},
  }
  for i, c in ipairs(cases) do
    write(p, c[1])
    local err = errors_with(c[2], files.load_npy, p)
    lu.assertStrContains(err, 'load_npy: ' .. p, false, 'case ' .. i)
  end
  errors_with('No such file', files.load_npy, self.dir .. '/missing.npy')
end

function TestNpy:test_bad_arguments()
  errors_with("dtype must be 'f4' or 'f8'", files.save_npy, self.dir .. '/x.npy', agop.zeros(2),
    {dtype = 'f2'})
  errors_with("unknown option 'dtyp'", files.save_npy, self.dir .. '/x.npy', agop.zeros(2),
    {dtyp = 'f4'})
  errors_with('must be an agop.Tensor', files.save_npy, self.dir .. '/x.npy', {1, 2})
  lu.assertEquals(list_dir(self.dir), {})
end

-- ===================================================================================
TestSafetensors = {}

function TestSafetensors:setUp() self.dir = make_dir() end
function TestSafetensors:tearDown() os.execute("rm -rf '" .. self.dir .. "'") end

function TestSafetensors:test_layout_matches_the_published_format()
  local p = self.dir .. '/m.safetensors'
  local w = agop.tensor{{{{1, 2}, {3, 4}}}} -- (1, 1, 2, 2)
  local b = agop.tensor{-1}
  files.save_safetensors(p, {{name = 'features.0.weight', tensor = w},
    {name = 'features.0.bias', tensor = b}}, {arch = 'vgg11', width = 8})
  local bytes = slurp(p)
  local n = string.unpack('<I8', bytes)
  lu.assertEquals(n % 8, 0) -- header padded so the data is 8-byte aligned
  local text = bytes:sub(9, 8 + n)
  lu.assertEquals(text:sub(1, 1), '{')
  lu.assertStrMatches(text, '^.-}%s*$')
  local h = json.decode(text)
  lu.assertEquals(h.__metadata__, {arch = 'vgg11', width = '8'})
  lu.assertEquals(h['features.0.weight'].dtype, 'F32')
  lu.assertEquals(h['features.0.weight'].shape, {1, 1, 2, 2})
  lu.assertEquals(h['features.0.weight'].data_offsets, {0, 16})
  lu.assertEquals(h['features.0.bias'].shape, {1})
  lu.assertEquals(h['features.0.bias'].data_offsets, {16, 20})
  -- the data: little-endian float32, in list order, right after the header
  lu.assertEquals(#bytes, 8 + n + 20)
  lu.assertEquals(bytes:sub(9 + n), f32{1, 2, 3, 4, -1})
  lu.assertEquals(bytes:sub(9 + n, 12 + n), '\0\0\128\63') -- 1.0f
end

function TestSafetensors:test_round_trip_map_and_list_forms()
  local p = self.dir .. '/r.safetensors'
  local g = agop.Generator(7)
  local map = {['a.weight'] = agop.randn(g, 4, 3), ['b'] = agop.randn(g, 2, 1, 3, 3),
    ['c.scalar'] = agop.randn(g, 1), ['empty'] = agop.zeros(0, 5)}
  files.save_safetensors(p, map)
  local t, meta, names = files.load_safetensors(p)
  lu.assertEquals(meta, {})
  -- a map is written in sorted name order; zero-size tensors take no bytes
  lu.assertEquals(names, {'a.weight', 'b', 'c.scalar', 'empty'})
  for k, v in pairs(map) do
    lu.assertEquals(t[k]:size(), v:size(), k)
    lu.assertTrue(t[k]:equal(v), k)
  end
  -- a list keeps its order, and dtypes F64/I64 are honoured
  local list = {{name = 'z', tensor = agop.tensor{1.5, 2}}, {name = 'y', tensor = agop.tensor{3},
    dtype = 'I64'}, {name = 'x', tensor = agop.tensor{{0.25}}, dtype = 'F64'}}
  files.save_safetensors(p, list, {note = 'hi'})
  t, meta, names = files.load_safetensors(p)
  lu.assertEquals(names, {'z', 'y', 'x'})
  lu.assertEquals(meta, {note = 'hi'})
  lu.assertEquals(t.y:totable(), {3})
  lu.assertEquals(t.x:totable(), {{0.25}})
  local h = json.decode(slurp(p):sub(9, 8 + string.unpack('<I8', slurp(p))))
  lu.assertEquals(h.y.dtype, 'I64')
  lu.assertEquals(h.y.data_offsets, {8, 16})
  lu.assertEquals(h.x.dtype, 'F64')
  -- agop.save / agop.load choose the format by extension
  agop.save(self.dir .. '/s.safetensors', {w = agop.ones(2)}, {k = 'v'})
  local t2, m2 = agop.load(self.dir .. '/s.safetensors')
  lu.assertEquals(t2.w:totable(), {1, 1})
  lu.assertEquals(m2.k, 'v')
end

function TestSafetensors:test_reads_half_bfloat_double_and_integer_dtypes()
  local p = self.dir .. '/d.safetensors'
  local data = string.pack('<I2<I2<I2', 0x3C00, 0xC000, 0x3555) -- F16 1, -2, 0.33325195
    .. string.pack('<I2<I2', 0x3F80, 0xC0A0) -- BF16 1, -5
    .. string.pack('<d', 0.1) -- F64
    .. string.pack('<i8<i4<i2', -3, 70000, -7) .. '\250\5\1' -- I64 I32 I16 I8(-6) U8 BOOL
  local h = {
    h = {dtype = 'F16', shape = {3}, data_offsets = {0, 6}},
    bf = {dtype = 'BF16', shape = {2}, data_offsets = {6, 10}},
    d = {dtype = 'F64', shape = json.array(), data_offsets = {10, 18}},
    i8 = {dtype = 'I64', shape = {1}, data_offsets = {18, 26}},
    i4 = {dtype = 'I32', shape = {1}, data_offsets = {26, 30}},
    i2 = {dtype = 'I16', shape = {1}, data_offsets = {30, 32}},
    i1 = {dtype = 'I8', shape = {1}, data_offsets = {32, 33}},
    u1 = {dtype = 'U8', shape = {1}, data_offsets = {33, 34}},
    b = {dtype = 'BOOL', shape = {1}, data_offsets = {34, 35}},
  }
  write(p, st_bytes(h, data))
  local t, _, names = files.load_safetensors(p)
  lu.assertEquals(#names, 9)
  lu.assertEquals(t.h:totable(), {1, -2, 0.333251953125})
  lu.assertEquals(t.bf:totable(), {1, -5})
  lu.assertEquals(t.d:dim(), 0)
  lu.assertAlmostEquals(t.d:get(), 0.1, 1e-8)
  lu.assertEquals(t.i8:totable(), {-3})
  lu.assertEquals(t.i4:totable(), {70000})
  lu.assertEquals(t.i2:totable(), {-7})
  lu.assertEquals(t.i1:totable(), {-6})
  lu.assertEquals(t.u1:totable(), {5})
  lu.assertEquals(t.b:totable(), {1})
end

function TestSafetensors:test_corrupt_files_are_clear_errors()
  local p = self.dir .. '/bad.safetensors'
  local e = function(dtype, shape, o) return {dtype = dtype, shape = shape, data_offsets = o} end
  local d8 = f32{1, 2}
  local cases = {
    {'', 'too short for a safetensors header'},
    {'\1\0\0', 'too short'},
    {string.pack('<I8', 0), 'header length 0 is out of range'},
    {string.pack('<I8', 1000) .. '{}', 'header length 1000 is larger than the file'},
    {string.pack('<i8', -5) .. '{}', 'is out of range'},
    {st_bytes('[1, 2]', ''), "header does not start with '{'"},
    {st_bytes('{"a": ', ''), 'malformed header: json.decode'},
    {st_bytes('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "a": 1}', d8),
      'duplicate key'},
    {st_bytes({a = e('F8_E4M3', {2}, {0, 2})}, '\0\0'), 'dtype F8_E4M3 is not supported'},
    {st_bytes({a = e('F32', {3}, {0, 8})}, d8), 'shape 3 of F32 needs 12 bytes'},
    {st_bytes({a = e('F32', {2}, {0, 16})}, d8), 'lie outside the data (8 bytes)'},
    {st_bytes({a = e('F32', {2}, {8, 0})}, d8), 'are not a range'},
    {st_bytes({a = e('F32', {2}, {-8, 0})}, d8), 'are not a range'},
    {st_bytes({a = e('F32', {1}, {0, 4}), b = e('F32', {1}, {2, 6})}, d8), 'overlap'},
    {st_bytes({a = e('F32', {1}, {4, 8})}, d8), 'data bytes [0, 4) belong to no tensor'},
    {st_bytes({a = e('F32', {1}, {0, 4})}, d8), 'the tensors end at data byte 4'},
    {st_bytes({a = e('F32', {2}, {0, 8})}, f32{1}), 'lie outside the data (4 bytes)'},
    {st_bytes({a = e('F32', {2.5}, {0, 8})}, d8), 'shape entries must be non-negative integers'},
    {st_bytes({a = e('F32', {-2}, {0, 8})}, d8), 'shape entries must be non-negative integers'},
    {st_bytes({a = e('F32', {2}, {0})}, d8), 'data_offsets must be'},
    {st_bytes({a = {dtype = 'F32', shape = {2}}}, d8), 'data_offsets must be'},
    {st_bytes({a = {shape = {2}, data_offsets = {0, 8}}}, d8), 'dtype missing'},
    {st_bytes({a = {dtype = 'F32', shape = {2}, data_offsets = {0, 8}, x = 1}}, d8),
      "unknown field 'x'"},
    {st_bytes({a = 3}, d8), 'entry is not an object'},
    {st_bytes({__metadata__ = {k = 1}}, ''), '__metadata__["k"] must be a string'},
    {st_bytes({__metadata__ = {1, 2}}, ''), '__metadata__ must be an object'},
    {st_bytes({a = e('F32', {1, 1, 1, 1, 1, 1, 1, 1, 2}, {0, 8})}, d8), '9 dimensions'},
    {st_bytes({a = e('F32', {1 << 30, 1 << 30}, {0, 8})}, d8), 'is too large'},
    {st_bytes({a = e('F32', {0, 1 << 30, 1 << 30}, {0, 0}), b = e('F32', {2}, {0, 8})}, d8),
      'is too large (limit: 1099511627776 elements'},
    {st_bytes({a = e('F32', {1 << 62, 1 << 62, 0}, {0, 0}), b = e('F32', {2}, {0, 8})}, d8),
      'is too large'},
  }
  for i, c in ipairs(cases) do
    write(p, c[1])
    local err = errors_with(c[2], files.load_safetensors, p)
    lu.assertStrContains(err, 'load_safetensors: ' .. p, false, 'case ' .. i)
  end
  errors_with('No such file', files.load_safetensors, self.dir .. '/missing.safetensors')
  -- a file cut in its data
  files.save_safetensors(p, {w = agop.ones(10)})
  local bytes = slurp(p)
  write(p, bytes:sub(1, #bytes - 4))
  errors_with('lie outside the data', files.load_safetensors, p)
end

function TestSafetensors:test_bad_arguments_leave_nothing_behind()
  local p = self.dir .. '/x.safetensors'
  errors_with('duplicate tensor name "a"', files.save_safetensors, p,
    {{name = 'a', tensor = agop.ones(1)}, {name = 'a', tensor = agop.ones(1)}})
  errors_with("'__metadata__' is reserved", files.save_safetensors, p, {__metadata__ = agop.ones(1)})
  errors_with('must be an agop.Tensor', files.save_safetensors, p, {a = 3})
  errors_with('must be {name=<string>, tensor=<tensor>}', files.save_safetensors, p, {agop.ones(1)})
  errors_with('(json.encode it)', files.save_safetensors, p, {a = agop.ones(1)}, {cfg = {1}})
  errors_with('dtype must be F32, F64 or I64', files.save_safetensors, p,
    {{name = 'a', tensor = agop.ones(1), dtype = 'F16'}})
  -- I64 of a non-integer fails inside the writer: the temporary file is removed
  errors_with('is not an integer', files.save_safetensors, p,
    {{name = 'a', tensor = agop.tensor{1.5}, dtype = 'I64'}})
  errors_with('No such file', files.save_safetensors, self.dir .. '/no/such/dir/x.safetensors',
    {a = agop.ones(1)})
  lu.assertEquals(list_dir(self.dir), {})
end

function TestSafetensors:test_writes_are_atomic_replacements()
  local p = self.dir .. '/m.safetensors'
  files.save_safetensors(p, {a = agop.ones(3)})
  local before = slurp(p)
  -- a failed save leaves the old file intact
  pcall(files.save_safetensors, p, {{name = 'a', tensor = agop.tensor{0.5}, dtype = 'I64'}})
  lu.assertEquals(slurp(p), before)
  -- a good one replaces it
  files.save_safetensors(p, {b = agop.zeros(2)})
  local t = files.load_safetensors(p)
  lu.assertNil(t.a)
  lu.assertEquals(t.b:totable(), {0, 0})
  lu.assertEquals(list_dir(self.dir), {'m.safetensors'})
  -- write_atomic directly, with raw strings
  agop.write_atomic(self.dir .. '/raw.bin', {'ab', 'cd'})
  lu.assertEquals(slurp(self.dir .. '/raw.bin'), 'abcd')
  lu.assertEquals(agop.file_size(self.dir .. '/raw.bin'), 4)
end

function TestSafetensors:test_read_raw_checks_ranges()
  local p = self.dir .. '/raw.bin'
  write(p, f32{1, 2, 3})
  lu.assertEquals(agop.read_raw(p, 4, 'F32', {2}):totable(), {2, 3})
  errors_with('need 16 bytes, the file has 12', agop.read_raw, p, 4, 'F32', {3})
  errors_with("unknown dtype 'F12'", agop.read_raw, p, 0, 'F12', {1})
  errors_with('offset must be an integer', agop.read_raw, p, -1, 'F32', {1})
  errors_with('the file has 12', agop.read_raw, p, 100, 'F32', {0})
end

-- ===================================================================================
TestInterop = {}

function TestInterop:setUp()
  probe()
  self.dir = make_dir()
end
function TestInterop:tearDown() os.execute("rm -rf '" .. self.dir .. "'") end

function TestInterop:test_numpy_reads_agoplua_files()
  if not have_numpy then lu.skip('python3-numpy not importable by ' .. PY .. ' (make deps)') end
  local t = agop.tensor{{1, -2.5, 3e-8}, {4e7, 5, 6}}
  files.save_npy(self.dir .. '/a4.npy', t)
  files.save_npy(self.dir .. '/a8.npy', t, {dtype = 'f8'})
  files.save_safetensors(self.dir .. '/m.safetensors', {{name = 'features.0.weight',
    tensor = agop.arange(24):reshape(2, 3, 2, 2)}, {name = 'features.0.bias', tensor = t}},
    {arch = 'x'})
  local out = python(self.dir, [==[
import sys, json, struct, numpy as np
d = sys.argv[1]
a4, a8 = np.load(d + '/a4.npy'), np.load(d + '/a8.npy')
ref = np.array([[1, -2.5, 3e-8], [4e7, 5, 6]], dtype=np.float32)
assert a4.dtype == np.float32 and a4.shape == (2, 3) and (a4 == ref).all(), a4
assert a8.dtype == np.float64 and (a8 == ref.astype(np.float64)).all(), a8
b = open(d + '/m.safetensors', 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
assert h['__metadata__'] == {'arch': 'x'}, h
base = 8 + n
for name, want in [('features.0.weight', np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)),
                   ('features.0.bias', ref)]:
    e = h[name]
    s, t = e['data_offsets']
    x = np.frombuffer(b[base + s:base + t], dtype='<f4').reshape(e['shape'])
    assert e['dtype'] == 'F32' and (x == want).all(), (name, x)
print('ok')
]==], self.dir)
  lu.assertStrContains(out, 'ok')
end

function TestInterop:test_agoplua_reads_numpy_files()
  if not have_numpy then lu.skip('python3-numpy not importable by ' .. PY .. ' (make deps)') end
  python(self.dir, [==[
import sys, json, struct, numpy as np
d = sys.argv[1]
x = (np.arange(60, dtype=np.float64).reshape(3, 4, 5) - 30) / 7
np.save(d + '/f8.npy', x)
np.save(d + '/f4.npy', x.astype(np.float32))
np.save(d + '/scalar.npy', np.float32(2.5))
np.save(d + '/fortran.npy', np.asfortranarray(x))
np.save(d + '/big.npy', x.astype('>f4'))
np.save(d + '/int.npy', np.arange(3))
with open(d + '/v2.npy', 'wb') as f:
    np.lib.format.write_array(f, x.astype(np.float32), version=(2, 0))
with open(d + '/v3.npy', 'wb') as f:
    np.lib.format.write_array(f, x.astype(np.float32), version=(3, 0))
# a safetensors file as the reference writer lays it out
tensors = {'w': x.astype(np.float32), 'h': x[0].astype(np.float16), 'd': x[1].astype(np.float64)}
hdr, off, blobs = {'__metadata__': {'format': 'pt'}}, 0, []
for k in sorted(tensors):
    b = tensors[k].tobytes()
    hdr[k] = {'dtype': {'float32': 'F32', 'float16': 'F16', 'float64': 'F64'}[str(tensors[k].dtype)],
              'shape': list(tensors[k].shape), 'data_offsets': [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
text = json.dumps(hdr, separators=(',', ':')).encode()
text += b' ' * ((8 - len(text) % 8) % 8)
open(d + '/np.safetensors', 'wb').write(struct.pack('<Q', len(text)) + text + b''.join(blobs))
]==], self.dir)
  local function ref(i, j, k) return ((i - 1) * 20 + (j - 1) * 5 + (k - 1) - 30) / 7 end
  for _, f in ipairs({'f8', 'f4', 'v2', 'v3'}) do
    local t = files.load_npy(self.dir .. '/' .. f .. '.npy')
    lu.assertEquals(t:size(), {3, 4, 5}, f)
    for _, ijk in ipairs({{1, 1, 1}, {2, 3, 4}, {3, 4, 5}, {1, 4, 2}}) do
      lu.assertAlmostEquals(t:get(table.unpack(ijk)), ref(table.unpack(ijk)), 1e-6, f)
    end
  end
  local s = files.load_npy(self.dir .. '/scalar.npy')
  lu.assertEquals(s:dim(), 0)
  lu.assertEquals(s:get(), 2.5)
  errors_with('fortran_order=True is not supported', files.load_npy, self.dir .. '/fortran.npy')
  errors_with("dtype '>f4' (big-endian) is not supported", files.load_npy, self.dir .. '/big.npy')
  errors_with("dtype '<i8' is not supported", files.load_npy, self.dir .. '/int.npy')
  local t, meta, names = files.load_safetensors(self.dir .. '/np.safetensors')
  lu.assertEquals(meta, {format = 'pt'})
  lu.assertEquals(names, {'d', 'h', 'w'})
  lu.assertEquals(t.w:size(), {3, 4, 5})
  lu.assertEquals(t.h:size(), {4, 5})
  lu.assertAlmostEquals(t.h:get(2, 3), ref(1, 2, 3), 2e-3) -- float16 precision
  lu.assertAlmostEquals(t.d:get(4, 5), ref(2, 4, 5), 1e-6)
end

function TestInterop:test_pytorch_loads_state_dict_of_equivalent_sequential()
  if not have_torch then lu.skip('python3-torch not importable by ' .. PY) end
  local g = agop.Generator(11)
  local p = self.dir .. '/model.safetensors'
  files.save_safetensors(p, {
    {name = 'features.0.weight', tensor = agop.randn(g, 4, 1, 3, 3)},
    {name = 'features.0.bias', tensor = agop.randn(g, 4)},
    {name = 'classifier.0.weight', tensor = agop.randn(g, 10, 4)},
    {name = 'classifier.0.bias', tensor = agop.randn(g, 10)},
  }, {arch = 'tiny'})
  files.save_npy(self.dir .. '/w.npy', agop.tensor{0.5})
  local out = python(self.dir, [==[
import sys, json, struct, numpy as np, torch
from torch import nn
p = sys.argv[1]
b = open(p, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
sd = {k: torch.from_numpy(np.frombuffer(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]],
      dtype='<f4').reshape(v['shape']).copy()) for k, v in h.items() if k != '__metadata__'}
m = nn.Module()
m.features = nn.Sequential(nn.Conv2d(1, 4, 3))
m.classifier = nn.Sequential(nn.Linear(4, 10))
m.load_state_dict(sd, strict=True)
print('ok', float(m.features[0].weight.sum()))
]==], p)
  lu.assertStrContains(out, 'ok')
  local t = files.load_safetensors(p)
  local want = t['features.0.weight']:sum()
  local got = tonumber(out:match('ok (%S+)'))
  lu.assertAlmostEquals(got, want, 1e-4)
end

-- agop.files is the module's name; agop.io, its first name, is the same table
function TestNpy:test_agop_io_is_agop_files()
  lu.assertIs(require('agop.io'), files)
  lu.assertIs(agop.io, files)
  lu.assertIs(agop.files, files)
end
