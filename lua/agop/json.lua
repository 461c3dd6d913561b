-- agop.json: a small strict JSON (RFC 8259) encoder and decoder.
--
--   json.encode(value [, {pretty=false, indent=2, sort_keys=true, allow_nan=false,
--                         max_depth=128}]) -> string
--   json.decode(text [, {max_depth=128}]) -> value
--
-- Lua <-> JSON:
--   nil / json.null <-> null (json.null keeps a null inside arrays and objects)
--   booleans, strings (must be valid UTF-8) <-> the same
--   integers <-> numbers without fraction or exponent ("3"); floats <-> numbers that have
--   one ("3.0", "1e-05"), so math.type survives a round trip. Floats are written with
--   the fewest digits that read back exactly. NaN and infinities are errors (or null
--   with allow_nan=true).
--   tables with keys 1..n <-> arrays; tables with string keys <-> objects; an empty
--   table encodes as {} unless marked with json.array(t). Decoded arrays carry that
--   mark, so [] survives a round trip. Mixed, sparse or non-string keys are errors that
--   name the path ("json.encode: config.layers[3]: ...").
-- pretty=true (implied by indent=n) writes one member per line (arrays of scalars stay
-- on one line); keys are sorted by default, so the output is deterministic.
-- The decoder rejects what the RFC rejects (comments, trailing commas, single quotes,
-- leading zeros, control characters in strings, lone surrogates, invalid UTF-8) and
-- duplicate keys, and says where: "json.decode: expected ',' or '}' at line 3 column 5".
local util = require('agop.util')

local json = {}

local fmt, byte, char, sub, find = string.format, string.byte, string.char, string.sub,
  string.find
local concat, sort = table.concat, table.sort
local mtype, tointeger = math.type, math.tointeger

--- The JSON null value (a unique sentinel).
json.null = setmetatable({}, {
  __name = 'json.null',
  __tostring = function() return 'json.null' end,
})

--- Metatable that marks a table as a JSON array (decoded arrays carry it).
json.array_mt = {__name = 'json.array'}

--- Marks t (or a new empty table) as an array, so that an empty one encodes as [].
function json.array(t) return setmetatable(t or {}, json.array_mt) end

-- ---------------------------------------------------------------------------------
-- encoding

local escapes = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n',
  ['\r'] = '\\r', ['\t'] = '\\t',
}
for c = 0, 31 do
  local ch = char(c)
  if not escapes[ch] then escapes[ch] = fmt('\\u%04x', c) end
end

local function enc_error(path, msg) error('json.encode: ' .. path .. ': ' .. msg, 0) end

local function enc_string(s, path)
  if not utf8.len(s) then enc_error(path, 'string is not valid UTF-8') end
  return '"' .. s:gsub('[%c"\\]', function(c) return escapes[c] or c end) .. '"'
end

local function enc_number(x, path, opts)
  if mtype(x) == 'integer' then return fmt('%d', x) end
  if x ~= x or x == math.huge or x == -math.huge then
    if opts.allow_nan then return 'null' end
    enc_error(path, fmt('cannot encode %s (JSON has no NaN or infinity; allow_nan=true writes null)',
      x ~= x and 'NaN' or x > 0 and 'Infinity' or '-Infinity'))
  end
  local s
  for digits = 14, 17 do
    s = fmt('%.' .. digits .. 'g', x)
    if tonumber(s) == x then break end
  end
  if not find(s, '[%.eEni]') then s = s .. '.0' end -- keep it a float
  return s
end

-- 'array', n for a table with keys 1..n (or marked), 'object' for string keys
local function table_kind(t, path)
  if getmetatable(t) == json.array_mt then
    local n = #t
    for k in pairs(t) do
      if mtype(k) ~= 'integer' or k < 1 or k > n then
        enc_error(path, fmt('array has a non-index key %s', tostring(k)))
      end
    end
    return 'array', n
  end
  local n, strings, others = 0, 0, nil
  for k in pairs(t) do
    if type(k) == 'string' then
      strings = strings + 1
    elseif mtype(k) == 'integer' and k >= 1 then
      n = n + 1
    else
      others = k
    end
  end
  if others ~= nil then
    enc_error(path, fmt('table key %s (a %s) is neither a string nor an array index',
      tostring(others), type(others)))
  end
  if strings > 0 and n > 0 then enc_error(path, 'table mixes string keys and array indices') end
  if n > 0 then
    for i = 1, n do
      if t[i] == nil then enc_error(path, fmt('array is sparse (index %d is nil)', i)) end
    end
    return 'array', n
  end
  return 'object', strings
end

local function is_scalar(v) return type(v) ~= 'table' or v == json.null end

local function encode_value(v, path, depth, opts, out, indent, seen)
  local tv = type(v)
  if v == nil or v == json.null then
    out[#out + 1] = 'null'
  elseif tv == 'boolean' then
    out[#out + 1] = v and 'true' or 'false'
  elseif tv == 'number' then
    out[#out + 1] = enc_number(v, path, opts)
  elseif tv == 'string' then
    out[#out + 1] = enc_string(v, path)
  elseif tv == 'table' then
    if seen[v] then enc_error(path, 'table contains itself (a cycle)') end
    if depth >= opts.max_depth then
      enc_error(path, fmt('nesting deeper than max_depth %d', opts.max_depth))
    end
    seen[v] = true
    local kind, n = table_kind(v, path)
    local pretty = opts.pretty
    local inner = pretty and indent .. opts.indent_str or ''
    if kind == 'array' then
      if n == 0 then
        out[#out + 1] = '[]'
      else
        local flat = not pretty
        if pretty then
          flat = true
          for i = 1, n do if not is_scalar(v[i]) then flat = false break end end
        end
        out[#out + 1] = '['
        for i = 1, n do
          if i > 1 then out[#out + 1] = pretty and flat and ', ' or ',' end
          if pretty and not flat then out[#out + 1] = '\n' .. inner end
          encode_value(v[i], path .. '[' .. i .. ']', depth + 1, opts, out, inner, seen)
        end
        if pretty and not flat then out[#out + 1] = '\n' .. indent end
        out[#out + 1] = ']'
      end
    else
      if n == 0 then
        out[#out + 1] = '{}'
      else
        local keys = {}
        for k in pairs(v) do keys[#keys + 1] = k end
        if opts.sort_keys then sort(keys) end
        out[#out + 1] = '{'
        for i, k in ipairs(keys) do
          if i > 1 then out[#out + 1] = ',' end
          if pretty then out[#out + 1] = '\n' .. inner end
          local kpath = path .. (k:match('^[%a_][%w_]*$') and '.' .. k or fmt('[%q]', k))
          out[#out + 1] = enc_string(k, kpath)
          out[#out + 1] = pretty and ': ' or ':'
          encode_value(v[k], kpath, depth + 1, opts, out, inner, seen)
        end
        if pretty then out[#out + 1] = '\n' .. indent end
        out[#out + 1] = '}'
      end
    end
    seen[v] = nil
  else
    local name = tv
    local mt = getmetatable(v)
    if type(mt) == 'table' and type(mt.__name) == 'string' then name = mt.__name end
    enc_error(path, fmt('cannot encode a %s%s', name,
      name == 'agop.Tensor' and ' (convert it with :totable())' or ''))
  end
end

local NONE = util.NONE
local enc_known = {pretty = NONE, indent = NONE, sort_keys = NONE, allow_nan = NONE,
  max_depth = NONE}

--- Encodes a Lua value as JSON text; see the top of this file for the mapping.
function json.encode(value, opts)
  opts = util.options(opts, enc_known, 'json.encode')
  local o = {
    pretty = opts.pretty == true or (opts.pretty == nil and opts.indent ~= nil),
    sort_keys = opts.sort_keys ~= false,
    allow_nan = opts.allow_nan and true or false,
    max_depth = opts.max_depth or 128,
    indent_str = string.rep(' ', opts.indent or 2),
  }
  local out = {}
  encode_value(value, '$', 0, o, out, '', {})
  return concat(out)
end

-- ---------------------------------------------------------------------------------
-- decoding

local function where(text, pos)
  local line, col = 1, 1
  local start = 1
  while true do
    local nl = find(text, '\n', start, true)
    if not nl or nl >= pos then break end
    line = line + 1
    start = nl + 1
  end
  col = pos - start + 1
  return fmt('line %d column %d', line, col)
end

local function dec_error(text, pos, msg)
  error(fmt('json.decode: %s at %s', msg, where(text, pos)), 0)
end

local function skip_ws(text, pos)
  local _, e = find(text, '^[ \t\r\n]*', pos)
  return e + 1
end

local function describe(text, pos)
  if pos > #text then return 'end of input' end
  local c = sub(text, pos, pos)
  if c:match('[%g]') then return "'" .. c .. "'" end
  return fmt('byte 0x%02x', byte(c))
end

local function utf8_char(cp) return utf8.char(cp) end

local decode_value -- forward

local function decode_string(text, pos)
  -- pos is at the opening quote
  local parts = {}
  local i = pos + 1
  while true do
    local s, e = find(text, '^[^"\\%c]+', i)
    if s then
      parts[#parts + 1] = sub(text, s, e)
      i = e + 1
    end
    local c = byte(text, i)
    if c == nil then dec_error(text, pos, 'unterminated string') end
    if c == 34 then -- "
      i = i + 1
      break
    elseif c == 92 then -- backslash
      local esc = sub(text, i + 1, i + 1)
      local simple = ({['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f',
        n = '\n', r = '\r', t = '\t'})[esc]
      if simple then
        parts[#parts + 1] = simple
        i = i + 2
      elseif esc == 'u' then
        local hex = text:match('^%x%x%x%x', i + 2)
        if not hex then dec_error(text, i, 'bad \\u escape (4 hex digits expected)') end
        local cp = tonumber(hex, 16)
        i = i + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local lo = text:match('^\\u(%x%x%x%x)', i)
          lo = lo and tonumber(lo, 16)
          if not lo or lo < 0xDC00 or lo > 0xDFFF then
            dec_error(text, i - 6, 'lone high surrogate in \\u escape')
          end
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
          i = i + 6
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          dec_error(text, i - 6, 'lone low surrogate in \\u escape')
        end
        parts[#parts + 1] = utf8_char(cp)
      else
        dec_error(text, i, 'bad escape \\' .. esc)
      end
    elseif c < 32 then
      dec_error(text, i, fmt('control character 0x%02x in string (escape it)', c))
    else
      -- DEL (0x7f) matches %c but is allowed in JSON strings
      parts[#parts + 1] = char(c)
      i = i + 1
    end
  end
  local s = concat(parts)
  if not utf8.len(s) then dec_error(text, pos, 'string is not valid UTF-8') end
  return s, i
end

local function decode_number(text, pos)
  local s, e = find(text, '^-?%d+', pos)
  if not s then dec_error(text, pos, 'unexpected ' .. describe(text, pos)) end
  local int = sub(text, s, e)
  if int:match('^-?0%d') then dec_error(text, pos, 'number with a leading zero') end
  local is_float = false
  local fs, fe = find(text, '^%.%d+', e + 1)
  if fs then
    e, is_float = fe, true
  elseif sub(text, e + 1, e + 1) == '.' then
    dec_error(text, e + 1, 'digits expected after the decimal point')
  end
  local xs, xe = find(text, '^[eE][+-]?%d+', e + 1)
  if xs then
    e, is_float = xe, true
  elseif sub(text, e + 1, e + 1):match('[eE]') then
    dec_error(text, e + 1, 'digits expected in the exponent')
  end
  local str = sub(text, pos, e)
  local v = tonumber(str)
  if is_float then
    v = v + 0.0 -- always a float
  else
    v = tointeger(v) or v -- integers that overflow 64 bits become floats
  end
  return v, e + 1
end

local function decode_array(text, pos, depth, opts)
  local arr = setmetatable({}, json.array_mt)
  local i = skip_ws(text, pos + 1)
  if sub(text, i, i) == ']' then return arr, i + 1 end
  local n = 0
  while true do
    local v
    v, i = decode_value(text, i, depth + 1, opts)
    n = n + 1
    arr[n] = v
    i = skip_ws(text, i)
    local c = sub(text, i, i)
    if c == ']' then return arr, i + 1 end
    if c ~= ',' then dec_error(text, i, "expected ',' or ']', got " .. describe(text, i)) end
    i = skip_ws(text, i + 1)
  end
end

local function decode_object(text, pos, depth, opts)
  local obj = {}
  local i = skip_ws(text, pos + 1)
  if sub(text, i, i) == '}' then return obj, i + 1 end
  while true do
    if sub(text, i, i) ~= '"' then
      dec_error(text, i, 'expected a string key, got ' .. describe(text, i))
    end
    local key
    local kpos = i
    key, i = decode_string(text, i)
    if obj[key] ~= nil then dec_error(text, kpos, fmt('duplicate key %q', key)) end
    i = skip_ws(text, i)
    if sub(text, i, i) ~= ':' then
      dec_error(text, i, "expected ':' after a key, got " .. describe(text, i))
    end
    local v
    v, i = decode_value(text, skip_ws(text, i + 1), depth + 1, opts)
    obj[key] = v
    i = skip_ws(text, i)
    local c = sub(text, i, i)
    if c == '}' then return obj, i + 1 end
    if c ~= ',' then dec_error(text, i, "expected ',' or '}', got " .. describe(text, i)) end
    i = skip_ws(text, i + 1)
  end
end

decode_value = function(text, pos, depth, opts)
  local c = sub(text, pos, pos)
  if c == '{' or c == '[' then
    if depth >= opts.max_depth then
      dec_error(text, pos, fmt('nesting deeper than max_depth %d', opts.max_depth))
    end
    if c == '{' then return decode_object(text, pos, depth, opts) end
    return decode_array(text, pos, depth, opts)
  elseif c == '"' then
    return decode_string(text, pos)
  elseif c == 't' and sub(text, pos, pos + 3) == 'true' then
    return true, pos + 4
  elseif c == 'f' and sub(text, pos, pos + 4) == 'false' then
    return false, pos + 5
  elseif c == 'n' and sub(text, pos, pos + 3) == 'null' then
    return json.null, pos + 4
  elseif c == '-' or c:match('^%d$') then
    return decode_number(text, pos)
  end
  dec_error(text, pos, 'unexpected ' .. describe(text, pos))
end

--- Decodes JSON text; errors say what is wrong and where (line and column).
function json.decode(text, opts)
  if type(text) ~= 'string' then
    error(fmt('json.decode: expected a string, got %s', type(text)), 0)
  end
  opts = util.options(opts, {max_depth = NONE}, 'json.decode')
  local o = {max_depth = opts.max_depth or 128}
  local i = skip_ws(text, 1)
  if i > #text then dec_error(text, i, 'empty input') end
  local v
  v, i = decode_value(text, i, 0, o)
  i = skip_ws(text, i)
  if i <= #text then dec_error(text, i, 'unexpected ' .. describe(text, i) .. ' after the value') end
  return v
end

--- Writes value as pretty JSON (sorted keys, a final newline) to path, atomically
--- (temporary file, fsync, rename). opts as for json.encode, pretty by default.
function json.write(path, value, opts)
  local o = {pretty = true}
  for k, v in pairs(opts or {}) do o[k] = v end
  local text = json.encode(value, o) .. '\n'
  require('agop').write_atomic(path, {text})
end

--- Reads and decodes a JSON file.
function json.read(path)
  local f, err = io.open(path, 'rb')
  if not f then error('json.read: ' .. err, 0) end
  local text = f:read('a')
  f:close()
  local ok, v = pcall(json.decode, text)
  if not ok then error(path .. ': ' .. v, 0) end
  return v
end

return json
