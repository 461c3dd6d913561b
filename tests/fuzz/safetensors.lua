-- Fuzz target: a .safetensors file (agop.files.load_safetensors: the JSON header, offsets
-- that must tile the data, the data through agop.read_raw).
local files = require('agop.files')
local common = dofile(fuzz.here .. '/common.lua')

return function(data)
  local path = common.write('input.safetensors', data)
  local ok, tensors, meta, names = pcall(files.load_safetensors, path)
  if not ok then return end
  local n = 0
  for _, name in ipairs(names) do
    if not tensors[name] then fuzz.fail('name ' .. name .. ' has no tensor') end
    n = n + tensors[name]:numel()
  end
  if n > #data then fuzz.fail(string.format('%d elements from %d bytes', n, #data)) end
  if type(meta) ~= 'table' then fuzz.fail('metadata is not a table') end
end
