-- agop.json: encoding (types, sorted keys, pretty printing, errors with paths) and strict
-- decoding (RFC 8259 plus duplicate keys and depth limits), checked against Python's json.
local lu = require('luaunit')
local json = require('agop.json')

local function errors_with(pattern, f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, 'expected an error matching ' .. pattern)
  lu.assertStrContains(tostring(err), pattern)
end

TestJson = {}

function TestJson:test_encode_scalars_and_number_types()
  lu.assertEquals(json.encode(3), '3')
  lu.assertEquals(json.encode(-0.0), '-0.0')
  lu.assertEquals(json.encode(3.0), '3.0')
  lu.assertEquals(json.encode(0.1), '0.1')
  lu.assertEquals(json.encode(1e300), '1e+300')
  lu.assertEquals(json.encode(true), 'true')
  lu.assertEquals(json.encode(nil), 'null')
  lu.assertEquals(json.encode(json.null), 'null')
  lu.assertEquals(json.encode('a"b\\c\n\1é'), '"a\\"b\\\\c\\n\\u0001é"')
  -- floats come back exactly, integers stay integers
  for _, x in ipairs({0.1, 1 / 3, 2 ^ 53, -1.5e-7, 5e-324, 123456789.123, 1.0}) do
    local y = json.decode(json.encode(x))
    lu.assertEquals(y, x)
    lu.assertEquals(math.type(y), 'float')
  end
  lu.assertEquals(math.type(json.decode(json.encode(42))), 'integer')
  lu.assertEquals(json.decode(json.encode(math.mininteger)), math.mininteger)
end

function TestJson:test_encode_tables_sorted_and_pretty()
  local v = {b = {1, 2, 3}, a = {x = 1.5, y = json.null, z = {}}, c = json.array(),
    d = {{k = 1}, {k = 2}}}
  lu.assertEquals(json.encode(v),
    '{"a":{"x":1.5,"y":null,"z":{}},"b":[1,2,3],"c":[],"d":[{"k":1},{"k":2}]}')
  lu.assertEquals(json.encode(v, {pretty = true}), [[
{
  "a": {
    "x": 1.5,
    "y": null,
    "z": {}
  },
  "b": [1, 2, 3],
  "c": [],
  "d": [
    {
      "k": 1
    },
    {
      "k": 2
    }
  ]
}]])
  lu.assertStrContains(json.encode({a = {b = 1}}, {indent = 4}), '\n        "b": 1\n')
end

function TestJson:test_encode_errors_name_the_path()
  errors_with('$.cfg.layers[2]: array is sparse (index 2 is nil)', json.encode,
    {cfg = {layers = {1, {[1] = 1, [3] = 3}}}})
  errors_with('table mixes string keys and array indices', json.encode, {1, a = 2})
  errors_with('neither a string nor an array index', json.encode, {[1.5] = 1})
  errors_with('$.f: cannot encode a function', json.encode, {f = print})
  errors_with('$.lr: cannot encode NaN', json.encode, {lr = 0 / 0})
  errors_with('cannot encode Infinity', json.encode, math.huge)
  lu.assertEquals(json.encode({a = 0 / 0}, {allow_nan = true}), '{"a":null}')
  errors_with('not valid UTF-8', json.encode, '\255')
  local t = {}
  t.self = t
  errors_with('$.self: table contains itself', json.encode, t)
  errors_with("unknown option 'pretyy'", json.encode, 1, {pretyy = true})
  local deep = {}
  local cur = deep
  for _ = 1, 200 do cur.x = {} cur = cur.x end
  errors_with('nesting deeper than max_depth 128', json.encode, deep)
end

function TestJson:test_decode_values()
  local v = json.decode(' {"a": [1, 2.5, -3e2, {"b": null}], "s": "\\u00e9\\ud83d\\ude00\\n\\/",'
    .. ' "big": 12345678901234567890, "t": true, "f": false, "e": [], "o": {}} ')
  lu.assertEquals(v.a[1], 1)
  lu.assertEquals(math.type(v.a[1]), 'integer')
  lu.assertEquals(v.a[2], 2.5)
  lu.assertEquals(v.a[3], -300.0)
  lu.assertEquals(math.type(v.a[3]), 'float')
  lu.assertEquals(v.a[4].b, json.null)
  lu.assertEquals(v.s, 'é😀\n/')
  lu.assertEquals(math.type(v.big), 'float')
  lu.assertTrue(v.t)
  lu.assertFalse(v.f)
  lu.assertEquals(getmetatable(v.e), json.array_mt)
  lu.assertEquals(json.encode(v.e), '[]') -- an empty array stays an array
  lu.assertEquals(json.encode(v.o), '{}')
end

function TestJson:test_decode_rejects_what_the_rfc_rejects()
  local cases = {
    {'', 'empty input at line 1 column 1'},
    {'[1,]', "unexpected ']'"},
    {'{"a":1,}', "expected a string key, got '}'"},
    {"{'a':1}", 'expected a string key'},
    {'[01]', 'leading zero'},
    {'[1.]', 'digits expected after the decimal point'},
    {'[.5]', "unexpected '.'"},
    {'1e', 'digits expected in the exponent'},
    {'"\\x"', 'bad escape \\x'},
    {'"\\u12"', 'bad \\u escape'},
    {'"\\ud800"', 'lone high surrogate'},
    {'"\\udc00"', 'lone low surrogate'},
    {'{"a":1,"a":2}', 'duplicate key "a"'},
    {'[1] x', "unexpected 'x' after the value"},
    {'"a\tb"', 'control character 0x09'},
    {'"abc', 'unterminated string'},
    {'nul', "unexpected 'n'"},
    {'NaN', "unexpected 'N'"},
    {'[1 2]', "expected ',' or ']'"},
    {'{"a" 1}', "expected ':' after a key"},
    {'// c\n1', "unexpected '/'"},
    {'"\255"', 'not valid UTF-8'},
    {'{\n  "a": 1\n  "b": 2}', 'at line 3 column 3'},
  }
  for _, c in ipairs(cases) do errors_with(c[2], json.decode, c[1]) end
  errors_with('nesting deeper than max_depth 128', json.decode, string.rep('[', 200))
  errors_with('nesting deeper than max_depth 3', json.decode, '[[[[1]]]]', {max_depth = 3})
  lu.assertEquals(json.decode('[[[1]]]', {max_depth = 3}), {{{1}}})
  errors_with('expected a string', json.decode, 12)
end

function TestJson:test_write_and_read_files()
  local p = os.tmpname()
  json.write(p, {b = 1, a = {1.5, 'x'}})
  local f = assert(io.open(p, 'rb'))
  local text = f:read('a')
  f:close()
  lu.assertEquals(text, '{\n  "a": [1.5, "x"],\n  "b": 1\n}\n')
  lu.assertEquals(json.read(p), {a = {1.5, 'x'}, b = 1})
  f = assert(io.open(p, 'wb'))
  f:write('{"a": }')
  f:close()
  errors_with(p .. ': json.decode', json.read, p)
  os.remove(p)
end

function TestJson:test_python_agrees()
  if os.execute('/usr/bin/python3 -c "import json" >/dev/null 2>&1') ~= true then
    lu.skip('/usr/bin/python3 not available')
  end
  local v = {name = 'vgg11 é', lr = 0.05, steps = 1200, accs = {0.9713, 0.98}, ok = true,
    none = json.null, nested = {a = {b = {c = 1e-7}}}}
  local p = os.tmpname()
  json.write(p, v)
  local out = io.popen('/usr/bin/python3 -c "import json,sys; d = json.load(open(sys.argv[1])); '
    .. 'print(json.dumps(d, sort_keys=True, separators=(\',\', \':\'), ensure_ascii=False))" ' .. p):read('a')
  os.remove(p)
  -- Python writes 1e-07 where we write 1e-07 too; compare decoded values
  local back = json.decode(out)
  lu.assertEquals(back.name, v.name)
  lu.assertEquals(back.lr, 0.05)
  lu.assertEquals(back.steps, 1200)
  lu.assertEquals(back.accs, v.accs)
  lu.assertEquals(back.none, json.null)
  lu.assertEquals(back.nested.a.b.c, 1e-7)
  lu.assertEquals(json.encode(back), json.encode(v))
end
