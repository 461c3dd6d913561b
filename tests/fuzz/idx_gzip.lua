-- Fuzz target: agop.read_idx on gzip files whose content the fuzzer mutates uncompressed.
-- An input is: the options byte (common.read_idx), a mode byte, the raw IDX bytes; the
-- file is those bytes compressed here, then, by mode & 3:
--   0: one gzip member                1: that member cut short by (mode >> 2) + 1 bytes
--   2: followed by (mode >> 2) bytes of junk (the start of the raw bytes)
--   3: two members, the raw bytes split at (mode >> 2) / 64 of their length
local common = dofile(fuzz.here .. '/common.lua')

return function(data)
  local b, rest = common.split(data)
  local mode, raw = common.split(rest)
  local kind, k = mode & 3, mode >> 2
  local file = fuzz.gzip(raw, 1 + k % 9)
  if kind == 1 then
    file = file:sub(1, math.max(0, #file - k - 1))
  elseif kind == 2 then
    file = file .. raw:sub(1, k)
  elseif kind == 3 then
    local cut = #raw * k // 64
    file = fuzz.gzip(raw:sub(1, cut)) .. fuzz.gzip(raw:sub(cut + 1))
  end
  common.read_idx(common.write('input.idx.gz', file), b, #raw)
end
