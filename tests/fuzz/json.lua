-- Fuzz target: json.decode on any bytes (strict RFC 8259, max_depth). What it accepts
-- must encode (unless it holds an infinity, which JSON cannot write) and decode back to
-- the same value, compact and pretty, and a second encode must give the same text.
local json = require('agop.json')

local function same(a, b)
  if a == b then return true end
  if type(a) ~= 'table' or type(b) ~= 'table' then
    return a ~= a and b ~= b -- NaN cannot come out of the decoder, but say so
  end
  if getmetatable(a) ~= getmetatable(b) then return false end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

return function(data)
  local ok, v = pcall(json.decode, data)
  if not ok then return end
  for _, opts in ipairs({{}, {pretty = true}}) do
    local ok2, text = pcall(json.encode, v, opts)
    if not ok2 then
      if not text:find('Infinity') then
        fuzz.fail('decoded, but encode failed: ' .. text)
      end
      return
    end
    local ok3, back = pcall(json.decode, text)
    if not ok3 then fuzz.fail('encoded text does not decode: ' .. back .. '\n' .. text) end
    if not same(v, back) then fuzz.fail('decode(encode(v)) differs from v:\n' .. text) end
    if json.encode(back, opts) ~= text then fuzz.fail('encode is not stable:\n' .. text) end
  end
end
