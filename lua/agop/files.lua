-- agop.files: tensors in files that NumPy and PyTorch read, and back. (Also reachable as
-- agop.io, its first name, which shadowed Lua's io library where it was imported.)
--
--   io.save_safetensors(path, tensors [, metadata])
--       tensors: a map name -> tensor (written in sorted name order) or an ordered list
--       {{name=, tensor= [, dtype='F32'|'F64'|'I64']}, ...}; metadata: a map of strings
--       (numbers and booleans are turned into strings) stored as "__metadata__".
--   io.load_safetensors(path) -> tensors (map name -> float32 tensor), metadata (map,
--       {} when absent), names (list in file order)
--   io.save_npy(path, tensor [, {dtype='f4'|'f8'}])   (NumPy format 1.0, C order)
--   io.load_npy(path) -> tensor, dtype ('<f4' or '<f8')
--
-- Formats (byte for byte what the reference implementations write):
--   .npy: "\x93NUMPY", version (1.0; 2.0 and 3.0 are read too), header length (uint16,
--   uint32 from 2.0), a Python dict literal {'descr': '<f4', 'fortran_order': False,
--   'shape': (2, 3), } padded with spaces and a newline so the data starts at a multiple
--   of 64 bytes, then the data. Only little-endian float32/float64 in C order are read.
--   safetensors: an 8-byte little-endian header length N, N bytes of JSON
--   {"__metadata__": {...}, "name": {"dtype": "F32", "shape": [...],
--   "data_offsets": [begin, end]}, ...} padded with spaces to a multiple of 8, then the
--   data; offsets count from the end of the header; the tensors tile the data exactly.
--   F32, F64, F16, BF16 and the integer types are read (converted to float32).
-- Headers are parsed here; the numbers move in C (agop.read_raw, agop.write_atomic),
-- which checks every range against the file. Any malformed file is an error naming the
-- file and the fault, raised before a tensor is returned (never a partial result), and
-- every write is atomic (temporary file, fsync, rename).
local agop = require('agop')
local json = require('agop.json')
local util = require('agop.util')
local check = require('agop.check')

local files = {}
local fmt = string.format

local MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024 -- as the reference implementation
local MAX_NPY_HEADER = 1024 * 1024 -- NumPy writes < 64 KiB; its own reader stops at 10000
local MAXDIM = 8
local MAXNUMEL = check.MAXNUMEL

-- a fault of a file's content: no position prefix (it is the file, not the code)
local function fail(where, path, msg)
  error(fmt('%s: %s: %s', where, tostring(path), msg), 0)
end

-- the first n bytes of a file and its size; errors name where
local function read_head(where, path, n)
  if type(path) ~= 'string' then
    error(fmt('%s: path must be a string, got %s', where, type(path)), 0)
  end
  local f, err = io.open(path, 'rb')
  if not f then error(fmt('%s: %s', where, err), 0) end
  local size = f:seek('end')
  f:seek('set', 0)
  local head = f:read(n) or ''
  f:close()
  if not size then fail(where, path, 'cannot determine the file size (not a regular file?)') end
  return head, size
end

-- The number of elements of a shape, or nil when the shape is too large: the product of
-- its sizes, 0 counted as 1, must stay within MAXNUMEL (a 0 does not make the others free).
local function shape_numel(shape)
  local numel, bound = 1, 1
  for _, s in ipairs(shape) do
    bound = bound * math.max(s, 1)
    if bound > MAXNUMEL then return nil end
    numel = numel * s
  end
  return numel
end

local function check_tensor(where, t, what)
  if not agop.is_tensor(t) then
    error(fmt('%s: %s must be an agop.Tensor, got %s', where, what, type(t)), 0)
  end
end

-- ---------------------------------------------------------------------------------
-- .npy

-- Parses the header dict literal of a .npy file (a small subset of Python: a dict of
-- quoted string keys to quoted strings, True/False, or tuples of integers).
local function parse_npy_header(s, path)
  local where = 'load_npy'
  local i = 1
  local function bad(msg) fail(where, path, 'malformed .npy header: ' .. msg) end
  local function ws() i = s:find('[^ \t\r\n]', i) or (#s + 1) end
  local function lit(c)
    ws()
    if s:sub(i, i) ~= c then bad(fmt("expected '%s' at byte %d, got %q", c, i, s:sub(i, i))) end
    i = i + 1
  end
  local function str()
    ws()
    local q = s:sub(i, i)
    if q ~= "'" and q ~= '"' then return nil end
    local e = s:find(q, i + 1, true)
    if not e then bad('unterminated string') end
    local v = s:sub(i + 1, e - 1)
    i = e + 1
    return v
  end
  local function value()
    ws()
    local c = s:sub(i, i)
    if c == "'" or c == '"' then return str() end
    if s:sub(i, i + 3) == 'True' then i = i + 4 return true end
    if s:sub(i, i + 4) == 'False' then i = i + 5 return false end
    if c == '(' then
      i = i + 1
      local t = {}
      while true do
        ws()
        if s:sub(i, i) == ')' then i = i + 1 break end
        local d = s:match('^%d+', i)
        if not d then bad(fmt('expected an integer in the shape at byte %d', i)) end
        i = i + #d
        if s:sub(i, i) == 'L' then i = i + 1 end -- Python 2 long
        local v = math.tointeger(tonumber(d))
        if not v then bad('shape entry ' .. d .. ' is too large') end
        t[#t + 1] = v
        ws()
        local sep = s:sub(i, i)
        if sep == ',' then
          i = i + 1
        elseif sep ~= ')' then
          bad(fmt("expected ',' or ')' in the shape at byte %d", i))
        end
      end
      return t
    end
    if c == '[' or c == '{' then bad('structured dtypes are not supported') end
    local num = s:match('^-?%d+', i)
    if num then i = i + #num return tonumber(num) end
    bad(fmt('unexpected %q at byte %d', c, i))
  end
  local d = {}
  lit('{')
  while true do
    ws()
    if s:sub(i, i) == '}' then i = i + 1 break end
    local k = str()
    if not k then bad(fmt('expected a quoted key at byte %d', i)) end
    lit(':')
    if d[k] ~= nil then bad('duplicate key ' .. k) end
    d[k] = value()
    ws()
    local sep = s:sub(i, i)
    if sep == ',' then
      i = i + 1
    elseif sep ~= '}' then
      bad(fmt("expected ',' or '}' at byte %d", i))
    end
  end
  ws()
  if i <= #s then bad(fmt('unexpected text after the dict at byte %d', i)) end
  for k in pairs(d) do
    if k ~= 'descr' and k ~= 'fortran_order' and k ~= 'shape' then
      bad("unknown key '" .. k .. "' (expected descr, fortran_order, shape)")
    end
  end
  if type(d.descr) ~= 'string' then bad("'descr' must be a string") end
  if type(d.fortran_order) ~= 'boolean' then bad("'fortran_order' must be True or False") end
  if type(d.shape) ~= 'table' then bad("'shape' must be a tuple") end
  return d
end

local npy_dtypes = {['<f4'] = {'F32', 4}, ['<f8'] = {'F64', 8}}

--- Reads a .npy file of little-endian float32 or float64 in C order; returns a float32
--- tensor of its shape and the file's dtype ('<f4' or '<f8').
function files.load_npy(path)
  local where = 'load_npy'
  local head, size = read_head(where, path, 12)
  if #head < 10 or head:sub(1, 6) ~= '\x93NUMPY' then
    fail(where, path, 'not a .npy file (no \\x93NUMPY magic)')
  end
  local major, minor = head:byte(7, 8)
  local hlen, pre
  if major == 1 then
    hlen, pre = string.unpack('<I2', head, 9), 10
  elseif major == 2 or major == 3 then
    if #head < 12 then fail(where, path, 'truncated .npy preamble') end
    hlen, pre = string.unpack('<I4', head, 9), 12
  else
    fail(where, path, fmt('unsupported .npy format version %d.%d (1.0, 2.0 and 3.0 are read)',
      major, minor))
  end
  if hlen > MAX_NPY_HEADER then
    fail(where, path, fmt('header length %d is over the limit of %d bytes', hlen, MAX_NPY_HEADER))
  end
  if pre + hlen > size then
    fail(where, path, fmt('header length %d is larger than the file (%d bytes)', hlen, size))
  end
  local f = assert(io.open(path, 'rb'))
  f:seek('set', pre)
  local text = f:read(hlen) or ''
  f:close()
  if #text ~= hlen then fail(where, path, 'file shrank while reading the header') end
  local d = parse_npy_header(text, path)
  local dt = npy_dtypes[d.descr]
  if not dt then
    local hint = d.descr:match('^>') and ' (big-endian)' or ''
    fail(where, path, fmt("dtype '%s'%s is not supported; agoplua reads '<f4' and '<f8'",
      d.descr, hint))
  end
  if d.fortran_order then
    fail(where, path, 'fortran_order=True is not supported (save a C-ordered array: '
      .. 'numpy.ascontiguousarray)')
  end
  if #d.shape > MAXDIM then
    fail(where, path, fmt('%d dimensions, at most %d are supported', #d.shape, MAXDIM))
  end
  local numel = shape_numel(d.shape)
  if not numel then
    fail(where, path, fmt('shape %s is too large (limit: %d elements, a 0 counted as 1)',
      check.sizes(d.shape), MAXNUMEL))
  end
  local need = pre + hlen + numel * dt[2]
  if need ~= size then
    fail(where, path, fmt('shape %s of %s needs %d bytes of data, the file holds %d',
      check.sizes(d.shape), d.descr, numel * dt[2], size - pre - hlen))
  end
  local ok, t = pcall(agop.read_raw, path, pre + hlen, dt[1], d.shape)
  if not ok then fail(where, path, t) end
  return t, d.descr
end

--- Writes one tensor as a .npy file (format 1.0, C order), float32 ('f4', the default)
--- or float64 ('f8'); atomically.
function files.save_npy(path, t, opts)
  local where = 'save_npy'
  if type(path) ~= 'string' then error(where .. ': path must be a string', 0) end
  check_tensor(where, t, 'the tensor')
  local dtype = util.options(opts, {dtype = 'f4'}, where).dtype
  local map = {f4 = {'<f4', 'F32'}, f8 = {'<f8', 'F64'}, ['<f4'] = {'<f4', 'F32'},
    ['<f8'] = {'<f8', 'F64'}, float32 = {'<f4', 'F32'}, float64 = {'<f8', 'F64'}}
  local d = map[dtype]
  if not d then error(fmt("%s: dtype must be 'f4' or 'f8', got %s", where, tostring(dtype)), 0) end
  local sizes = t:size()
  local dims = {}
  for i, s in ipairs(sizes) do dims[i] = tostring(s) end
  local shape = #dims == 1 and '(' .. dims[1] .. ',)' or '(' .. table.concat(dims, ', ') .. ')'
  local dict = fmt("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", d[1], shape)
  local major, lenfmt, pre = 1, '<I2', 10
  if #dict + 1 + pre > 65535 then major, lenfmt, pre = 2, '<I4', 12 end
  local total = pre + #dict + 1
  local padded = dict .. string.rep(' ', (64 - total % 64) % 64) .. '\n'
  local header = '\x93NUMPY' .. string.char(major, 0) .. string.pack(lenfmt, #padded) .. padded
  agop.write_atomic(path, {header, {t, d[2]}})
end

-- ---------------------------------------------------------------------------------
-- safetensors

local st_size = {F32 = 4, F64 = 8, F16 = 2, BF16 = 2, I64 = 8, I32 = 4, I16 = 2, I8 = 1,
  U8 = 1, BOOL = 1}

local function is_int(v) return math.type(v) == 'integer' end

--- Reads a .safetensors file: tensors (map name -> float32 tensor), metadata (map of
--- strings), names (in file order).
function files.load_safetensors(path)
  local where = 'load_safetensors'
  local head, size = read_head(where, path, 8)
  if #head < 8 then fail(where, path, fmt('file holds %d bytes, too short for a safetensors header', size)) end
  local n = string.unpack('<i8', head)
  if n <= 0 or n > MAX_SAFETENSORS_HEADER then
    fail(where, path, fmt('header length %s is out of range (1..%d)', tostring(n),
      MAX_SAFETENSORS_HEADER))
  end
  if 8 + n > size then
    fail(where, path, fmt('header length %d is larger than the file (%d bytes)', n, size))
  end
  local f = assert(io.open(path, 'rb'))
  f:seek('set', 8)
  local text = f:read(n) or ''
  f:close()
  if #text ~= n then fail(where, path, 'file shrank while reading the header') end
  if text:sub(1, 1) ~= '{' then fail(where, path, "header does not start with '{'") end
  local ok, hdr = pcall(json.decode, text, {max_depth = 8})
  if not ok then fail(where, path, 'malformed header: ' .. hdr) end
  if type(hdr) ~= 'table' or getmetatable(hdr) == json.array_mt then
    fail(where, path, 'header is not a JSON object')
  end
  local datalen = size - 8 - n
  local meta = {}
  local entries = {}
  for name, e in pairs(hdr) do
    if name == '__metadata__' then
      if type(e) ~= 'table' or getmetatable(e) == json.array_mt then
        fail(where, path, '__metadata__ must be an object of strings')
      end
      for k, v in pairs(e) do
        if type(v) ~= 'string' then
          fail(where, path, fmt('__metadata__[%q] must be a string, got %s', k,
            v == json.null and 'null' or type(v)))
        end
        meta[k] = v
      end
    else
      local function bad(msg) fail(where, path, fmt('tensor %q: %s', name, msg)) end
      if type(e) ~= 'table' or getmetatable(e) == json.array_mt then bad('entry is not an object') end
      for k in pairs(e) do
        if k ~= 'dtype' and k ~= 'shape' and k ~= 'data_offsets' then bad("unknown field '" .. k .. "'") end
      end
      if type(e.dtype) ~= 'string' then bad('dtype missing or not a string') end
      local esize = st_size[e.dtype]
      if not esize then
        bad(fmt('dtype %s is not supported (F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL)',
          e.dtype))
      end
      if type(e.shape) ~= 'table' or getmetatable(e.shape) ~= json.array_mt then
        bad('shape missing or not an array')
      end
      if #e.shape > MAXDIM then bad(fmt('%d dimensions, at most %d are supported', #e.shape, MAXDIM)) end
      for _, s in ipairs(e.shape) do
        if not is_int(s) or s < 0 then bad('shape entries must be non-negative integers') end
      end
      local numel = shape_numel(e.shape)
      if not numel then
        bad(fmt('shape %s is too large (limit: %d elements, a 0 counted as 1)',
          check.sizes(e.shape), MAXNUMEL))
      end
      local o = e.data_offsets
      if type(o) ~= 'table' or #o ~= 2 or not is_int(o[1]) or not is_int(o[2]) then
        bad('data_offsets must be [begin, end] integers')
      end
      if o[1] < 0 or o[2] < o[1] then bad(fmt('data_offsets [%d, %d] are not a range', o[1], o[2])) end
      if o[2] > datalen then
        bad(fmt('data_offsets [%d, %d] lie outside the data (%d bytes)', o[1], o[2], datalen))
      end
      if o[2] - o[1] ~= numel * esize then
        bad(fmt('shape %s of %s needs %d bytes, data_offsets [%d, %d] hold %d',
          check.sizes(e.shape), e.dtype, numel * esize, o[1], o[2], o[2] - o[1]))
      end
      entries[#entries + 1] = {name = name, dtype = e.dtype, shape = e.shape, b = o[1], e = o[2]}
    end
  end
  table.sort(entries, function(a, b)
    if a.b ~= b.b then return a.b < b.b end
    if a.e ~= b.e then return a.e < b.e end
    return a.name < b.name
  end)
  local pos, prev = 0, nil
  for _, e in ipairs(entries) do
    if e.b < pos then
      fail(where, path, fmt('tensors %q [%d, %d) and %q [%d, %d) overlap', prev.name, prev.b,
        prev.e, e.name, e.b, e.e))
    elseif e.b > pos then
      fail(where, path, fmt('data bytes [%d, %d) belong to no tensor (before %q)', pos, e.b, e.name))
    end
    pos, prev = e.e, e
  end
  if pos ~= datalen then
    fail(where, path, fmt('the tensors end at data byte %d, but the file has %d bytes of data',
      pos, datalen))
  end
  local tensors, names = {}, {}
  for i, e in ipairs(entries) do
    local ok2, t = pcall(agop.read_raw, path, 8 + n + e.b, e.dtype, e.shape)
    if not ok2 then fail(where, path, t) end
    tensors[e.name] = t
    names[i] = e.name
  end
  return tensors, meta, names
end

-- {name=, tensor=, dtype=} list from either accepted form
local function tensor_list(where, tensors)
  if type(tensors) ~= 'table' then
    error(fmt('%s: tensors must be a map name -> tensor or a list {{name=, tensor=}}, got %s',
      where, type(tensors)), 0)
  end
  local list = {}
  if #tensors > 0 then
    for i, e in ipairs(tensors) do
      if type(e) ~= 'table' or type(e.name) ~= 'string' then
        error(fmt('%s: list entry %d must be {name=<string>, tensor=<tensor>}', where, i), 0)
      end
      check_tensor(where, e.tensor, fmt('entry %d (%q) tensor', i, e.name))
      list[i] = {name = e.name, tensor = e.tensor, dtype = e.dtype or 'F32'}
    end
    for k in pairs(tensors) do
      if not is_int(k) then
        error(fmt('%s: tensors mixes a list with the key %s', where, tostring(k)), 0)
      end
    end
  else
    local keys = {}
    for k in pairs(tensors) do
      if type(k) ~= 'string' then
        error(fmt('%s: tensor names must be strings, got %s', where, type(k)), 0)
      end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    for i, k in ipairs(keys) do
      check_tensor(where, tensors[k], fmt('tensors[%q]', k))
      list[i] = {name = k, tensor = tensors[k], dtype = 'F32'}
    end
  end
  local seen = {}
  for _, e in ipairs(list) do
    if e.name == '' then error(where .. ': tensor names must not be empty', 0) end
    if e.name == '__metadata__' then error(where .. ": '__metadata__' is reserved", 0) end
    if seen[e.name] then error(fmt('%s: duplicate tensor name %q', where, e.name), 0) end
    if not ({F32 = true, F64 = true, I64 = true})[e.dtype] then
      error(fmt('%s: tensor %q: dtype must be F32, F64 or I64, got %s', where, e.name,
        tostring(e.dtype)), 0)
    end
    seen[e.name] = true
  end
  return list
end

--- Writes tensors as a .safetensors file (F32 unless an entry says dtype='F64'/'I64'),
--- with metadata (strings) as __metadata__; atomically.
function files.save_safetensors(path, tensors, metadata)
  local where = 'save_safetensors'
  if type(path) ~= 'string' then error(where .. ': path must be a string', 0) end
  local list = tensor_list(where, tensors)
  local meta = {}
  if metadata ~= nil then
    if type(metadata) ~= 'table' then error(where .. ': metadata must be a table of strings', 0) end
    for k, v in pairs(metadata) do
      if type(k) ~= 'string' then error(where .. ': metadata keys must be strings', 0) end
      if type(v) == 'number' then
        v = json.encode(v)
      elseif type(v) == 'boolean' then
        v = tostring(v)
      elseif type(v) ~= 'string' then
        error(fmt('%s: metadata[%q] must be a string, got %s (json.encode it)', where, k,
          type(v)), 0)
      end
      meta[k] = v
    end
  end
  local parts, items, offset = {''}, {}, 0
  if next(meta) ~= nil then items[1] = '"__metadata__":' .. json.encode(meta) end
  for _, e in ipairs(list) do
    local sizes = e.tensor:size()
    local nbytes = e.tensor:numel() * st_size[e.dtype]
    items[#items + 1] = json.encode(e.name) .. ':' .. fmt('{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}',
      e.dtype, json.encode(json.array(sizes)), offset, offset + nbytes)
    offset = offset + nbytes
    parts[#parts + 1] = e.dtype == 'F32' and e.tensor or {e.tensor, e.dtype}
  end
  local header = '{' .. table.concat(items, ',') .. '}'
  header = header .. string.rep(' ', (8 - #header % 8) % 8)
  parts[1] = string.pack('<I8', #header) .. header
  agop.write_atomic(path, parts)
end

return files
