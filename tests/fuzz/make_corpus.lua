-- Writes the seed corpora of the fuzz harnesses into tests/fuzz/corpus/<target>/, each
-- file made by agoplua's own writers (or spelled out here), small valid files and edge
-- cases around every check. Run from the repository:
--   ./agoplua tests/fuzz/make_corpus.lua
-- Inputs of idx, idx_gzip and model start with a selector byte (see those targets).
local agop = require('agop')
local files = require('agop.files')
local json = require('agop.json')
local models = require('agop.models')
local train = require('agop.train')
local util = require('agop.util')

local root = 'tests/fuzz/corpus'
agop.manual_seed(1) -- the same seeds every time (checkpoints differ only in their timings)
local tmp = os.tmpname()
os.remove(tmp)
util.mkdir(tmp)

local function put(target, name, bytes)
  util.mkdir(root .. '/' .. target)
  local f = assert(io.open(root .. '/' .. target .. '/' .. name, 'wb'))
  f:write(bytes)
  f:close()
end

local function slurp(path) return util.read_file(path) end

-- ---- json: documents and near misses
local docs = {
  ['object'] = '{"a": [1, 2.5, -3e-7, true, false, null], "b": {"c": "d\\u00e9\\n"}}',
  ['empty_array'] = '[]', ['empty_object'] = '{}', ['string_escapes'] = '"\\ud83d\\ude00\\/\\"\\\\\\b\\f\\r\\t"',
  ['numbers'] = '[0, -0, 0.0, -0.0, 1E+2, 9007199254740993, 99999999999999999999, 1e999, -1e-400]',
  ['nested'] = string.rep('[', 20) .. string.rep(']', 20),
  ['too_deep'] = string.rep('[', 130) .. string.rep(']', 130),
  ['utf8'] = '"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"', ['bad_utf8'] = '"\xc3\x28"',
  ['lone_surrogate'] = '"\\ud800"', ['trailing_comma'] = '[1, 2,]', ['leading_zero'] = '012',
  ['duplicate_key'] = '{"a": 1, "a": 2}', ['control_char'] = '"a\tb"', ['comment'] = '// x\n1',
  ['config'] = json.encode(models.vgg11{width = 0.01}.config),
}
for name, text in pairs(docs) do put('json', name, text) end

-- ---- npy: agop's writer, then edge cases by hand
local function npy_header(descr, shape, major)
  local dict = string.format("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape)
  major = major or 1
  local lenfmt, pre = major == 1 and '<I2' or '<I4', major == 1 and 10 or 12
  local padded = dict .. string.rep(' ', (64 - (pre + #dict + 1) % 64) % 64) .. '\n'
  return '\x93NUMPY' .. string.char(major, 0) .. string.pack(lenfmt, #padded) .. padded
end
files.save_npy(tmp .. '/a.npy', agop.arange(0, 6):reshape(2, 3))
put('npy', 'f4_2x3', slurp(tmp .. '/a.npy'))
files.save_npy(tmp .. '/b.npy', agop.arange(0, 4):div(3), {dtype = 'f8'})
put('npy', 'f8_4', slurp(tmp .. '/b.npy'))
put('npy', 'scalar', npy_header('<f4', '()') .. string.pack('<f', 2.5))
put('npy', 'v2_zero_dim', npy_header('<f4', '(0, 5)', 2))
put('npy', 'v3_1x1', npy_header('<f4', '(1, 1)', 3) .. string.pack('<f', 1.5))
put('npy', 'big_shape', npy_header('<f4', '(4294967296, 4294967296, 0)'))
put('npy', 'zero_then_huge', npy_header('<f8', '(0, 9223372036854775807)'))
put('npy', 'fortran', (npy_header('<f4', '(2,)'):gsub('False', 'True ')) .. string.pack('<ff', 1, 2))
put('npy', 'big_endian', npy_header('>f4', '(1,)') .. '\0\0\0\0')
put('npy', 'short', '\x93NUMPY\x01\x00\xff\xff{')

-- ---- safetensors: agop's writer (metadata, several dtypes), then edge cases by hand
files.save_safetensors(tmp .. '/a.safetensors', {
  {name = 'w', tensor = agop.arange(0, 6):reshape(2, 3)},
  {name = 'd', tensor = agop.arange(0, 2), dtype = 'F64'},
  {name = 'i', tensor = agop.arange(0, 3), dtype = 'I64'},
  {name = 'empty', tensor = agop.zeros(0, 4)},
}, {note = 'seed', n = 3})
put('safetensors', 'mixed', slurp(tmp .. '/a.safetensors'))
local function st(header, data)
  header = header .. string.rep(' ', (8 - #header % 8) % 8)
  return string.pack('<I8', #header) .. header .. (data or '')
end
put('safetensors', 'f16_bf16_u8', st('{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},'
  .. '"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]},'
  .. '"u":{"dtype":"U8","shape":[2,1],"data_offsets":[6,8]}}', '\0\x3c\x00\x7c\x80\x3f\x01\xff'))
put('safetensors', 'zero_then_huge',
  st('{"z":{"dtype":"F32","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}}'))
put('safetensors', 'overlap', st('{"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},'
  .. '"b":{"dtype":"I8","shape":[2],"data_offsets":[1,3]}}', 'abc'))
put('safetensors', 'metadata_only', st('{"__metadata__":{"format":"pt"}}'))
put('safetensors', 'bad_length', string.pack('<I8', 1 << 40) .. '{}')

-- ---- idx (selector byte, then the file) and idx_gzip (selector, mode, raw file)
local function idx(sizes, fill)
  local head = '\0\0\x08' .. string.char(#sizes)
  local n = 1
  for _, s in ipairs(sizes) do head, n = head .. string.pack('>I4', s), n * s end
  local body = {}
  for i = 1, n do body[i] = string.char(fill(i)) end
  return head .. table.concat(body)
end
local images = idx({3, 4, 5}, function(i) return (i * 37) % 256 end)
local labels = idx({5}, function(i) return i % 10 end)
local idx_seeds = {
  images = {0, images}, images_pad_norm = {16 + 32 + 64 + 1 + 4, images},
  labels = {8, labels}, labels_limit = {8 + 1 + 2, labels},
  labels_bad = {8, idx({2}, function() return 10 end)},
  rank4 = {16, idx({2, 1, 2, 3}, function(i) return i end)},
  zero_items = {0, idx({0, 28, 28}, function() return 0 end)},
  zero_then_huge = {0, '\0\0\x08\x03' .. string.pack('>I4I4I4', 0, 0xffffffff, 0xffffffff)},
  short = {0, '\0\0\x08\x03\0\0\0\x02'}, truncated = {0, images:sub(1, -2)},
  trailing = {0, images .. 'x'}, int_type = {0, '\0\0\x0c\x01\0\0\0\x01\0\0\0\x07'},
}
for name, s in pairs(idx_seeds) do
  put('idx', name, string.char(s[1]) .. s[2])
  put('idx_gzip', name, string.char(s[1], 0) .. s[2])
end
put('idx_gzip', 'images_cut', string.char(0, 1 + 4 * 3) .. images)
put('idx_gzip', 'images_junk', string.char(0, 2 + 4 * 5) .. images)
put('idx_gzip', 'images_two_members', string.char(0, 3 + 4 * 20) .. images)
-- gzip files as gzip writes them, for the idx harness (which reads them by content)
for _, name in ipairs({'images', 'labels'}) do
  local raw = tmp .. '/' .. name
  local f = assert(io.open(raw, 'wb'))
  f:write(idx_seeds[name][2])
  f:close()
  assert(os.execute(string.format("gzip -9n '%s'", raw)))
  put('idx', name .. '_gz', string.char(idx_seeds[name][1]) .. slurp(raw .. '.gz'))
end

-- ---- png: agoplua's own canvases (RGB), plus a hand-made gray+alpha and a palette image
local function png_chunk(kind, data)
  local crc = 0 -- fuzz.png_fix_crc fixes it; agop.read_png outside the harness would not
  return string.pack('>I4', #data) .. kind .. data .. string.pack('>I4', crc)
end
local c = agop.Canvas(7, 5, {bg = '#102030'})
c:save(tmp .. '/a.png')
put('png', 'rgb_7x5', slurp(tmp .. '/a.png'))
c = agop.Canvas(1, 1)
c:save(tmp .. '/b.png')
put('png', 'rgb_1x1', slurp(tmp .. '/b.png'))
local sig = '\x89PNG\r\n\x1a\n'
local function ihdr(w, h, depth, ctype, interlace)
  return png_chunk('IHDR', string.pack('>I4I4BBBBB', w, h, depth, ctype, 0, 0, interlace or 0))
end
local function zlib_stored(raw) -- a zlib stream of one stored block, no compression needed
  local a, b = 1, 0
  for i = 1, #raw do a = (a + raw:byte(i)) % 65521; b = (b + a) % 65521 end
  return '\x78\x01\x01' .. string.pack('<I2I2', #raw, (~#raw) & 0xffff) .. raw
    .. string.pack('>I4', (b << 16) | a)
end
put('png', 'gray_alpha_2x2', sig .. ihdr(2, 2, 8, 4)
  .. png_chunk('IDAT', zlib_stored('\0\x10\xff\x20\x80\0\x30\x40\x50\x60')) .. png_chunk('IEND', ''))
put('png', 'palette_trns_2x1', sig .. ihdr(2, 1, 4, 3) .. png_chunk('PLTE', '\255\0\0\0\255\0')
  .. png_chunk('tRNS', '\128') .. png_chunk('IDAT', zlib_stored('\0\x01')) .. png_chunk('IEND', ''))
put('png', 'gray16_interlaced_3x3', sig .. ihdr(3, 3, 16, 0, 1)
  .. png_chunk('IDAT', zlib_stored(string.rep('\0\1\2', 12))) .. png_chunk('IEND', ''))
put('png', 'huge_header', sig .. ihdr(65535, 65535, 8, 6) .. png_chunk('IEND', ''))

-- ---- model: selector 0 = models.load, 1 = a checkpoint of the tiny run
local m = models.vgg11{width = 0.01}
models.save(m, tmp .. '/m.safetensors')
put('model', 'vgg11_tiny', '\0' .. slurp(tmp .. '/m.safetensors'))
models.save(models.vgg11{width = 0.01, head = 'classic', hidden = 3, batchnorm = true},
  tmp .. '/m2.safetensors')
put('model', 'vgg11_classic_bn', '\0' .. slurp(tmp .. '/m2.safetensors'))
fuzz = {dir = tmp, here = 'tests/fuzz', corpus = true} -- what the harness gives its targets
local target = dofile('tests/fuzz/model.lua')
for sel, kind in pairs({[1] = 'sgd', [3] = 'adam'}) do
  local model, set = target.tiny()
  local opts = {out = tmp .. '/run_' .. kind, optimizer = kind, epochs = 1}
  for k, v in pairs(target.fit_opts) do if opts[k] == nil then opts[k] = v end end
  train.fit(model, set, set, opts)
  put('model', 'checkpoint_' .. kind, string.char(sel) .. slurp(opts.out .. '/checkpoint.safetensors'))
end

assert(os.execute(string.format("rm -rf '%s'", tmp)))
print('seed corpora written under ' .. root)
