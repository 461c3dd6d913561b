-- What the fuzz targets share: the input written to a file in fuzz.dir (the readers
-- take paths), and the options byte some targets read from the front of an input.
local common = {}

--- Writes data to fuzz.dir/name (replacing it) and returns the path.
function common.write(name, data)
  local path = fuzz.dir .. '/' .. name
  local f = assert(io.open(path, 'wb'))
  f:write(data)
  f:close()
  return path
end

--- The first byte of data (0 for an empty input) and the rest.
function common.split(data)
  return (data:byte(1) or 0), data:sub(2)
end

--- agop.read_idx on path with the options of byte b (bit 0: limit = bits 1-2, bit 3:
--- max_label = 9, bit 4: pad = 2, bit 5: mean/std normalization, bit 6: channel = true);
--- checks what comes back against the file's nbytes.
function common.read_idx(path, b, nbytes)
  local o = {}
  if b & 1 ~= 0 then o.limit = (b >> 1) & 3 end
  if b & 8 ~= 0 then o.max_label = 9 end
  if b & 16 ~= 0 then o.pad = 2 end
  if b & 32 ~= 0 then o.mean, o.std = 0.1307, 0.3081 end
  if b & 64 ~= 0 then o.channel = true end
  local ok, t, dims = pcall(require('agop').read_idx, path, o)
  if not ok then return end
  if o.limit and t:size(1) > o.limit then fuzz.fail('read_idx kept more items than limit') end
  if t:size(1) > dims[1] then fuzz.fail('read_idx returned more items than the header says') end
  if not o.pad and t:numel() > nbytes then
    fuzz.fail(string.format('read_idx returned %d values from %d bytes', t:numel(), nbytes))
  end
end

return common
