-- Fuzz target: agop.read_idx on a file, raw or gzip (detected by content): the first
-- byte of an input chooses the options (common.read_idx), the rest is the file.
local common = dofile(fuzz.here .. '/common.lua')

return function(data)
  local b, file = common.split(data)
  common.read_idx(common.write('input.idx', file), b, #file)
end
