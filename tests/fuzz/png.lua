-- Fuzz target: agop.read_png. Every chunk's CRC is recomputed before the file is written
-- (fuzz.png_fix_crc), so mutated chunks reach the parsers rather than the CRC check.
local agop = require('agop')
local common = dofile(fuzz.here .. '/common.lua')

return function(data)
  local path = common.write('input.png', fuzz.png_fix_crc(data))
  local ok, w, h, ch, px, t = pcall(agop.read_png, path)
  if not ok then return end
  local sz = t:size()
  if sz[1] ~= h or sz[2] ~= w or sz[3] ~= ch then fuzz.fail('tensor shape differs from w, h, ch') end
  local last = {px(w - 1, h - 1)}
  if #last ~= ch then fuzz.fail('px returned ' .. #last .. ' values for ' .. ch .. ' channels') end
  if pcall(px, w, 0) or pcall(px, 0, h) or pcall(px, -1, 0) then
    fuzz.fail('px accepted a pixel outside the image')
  end
end
