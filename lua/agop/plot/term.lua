-- agop.plot.term: matrices in the terminal (plot.show, agop.show): characters,
-- xterm-256 colours matched in CIE Lab, or 24-bit colour.
-- Part of agop.plot (lua/agop/plot.lua), which holds the Figure and the public API.
local agop = require('agop')
local check = require('agop.check')
local A = require('agop.plot.axes')

local fmt, floor, max, min, huge = string.format, math.floor, math.max, math.min, math.huge
local NONE, fail, options, short = A.NONE, A.fail, A.options, A.short

local term = {}

---------------------------------------------------------------------------------------
-- the terminal: term.show (agop.show)
---------------------------------------------------------------------------------------

local RAMP = ' .:-=+*#%@'

--- The display mode the terminal supports: 'truecolor' (COLORTERM=truecolor/24bit),
--- '256' (TERM mentions 256color), else 'ascii' (also when NO_COLOR is set).
function term.term_mode(env)
  env = env or os.getenv
  local nc = env('NO_COLOR')
  if nc and nc ~= '' then return 'ascii' end
  local ct = (env('COLORTERM') or ''):lower()
  if ct == 'truecolor' or ct == '24bit' then return 'truecolor' end
  local term = env('TERM') or ''
  if term:find('direct') then return 'truecolor' end
  if term:find('256') then return '256' end
  return 'ascii'
end

--- Terminal width: COLUMNS, else `tput cols`, else 80.
function term.term_width(env)
  env = env or os.getenv
  local n = tonumber(env('COLUMNS') or '')
  if n and n >= 8 then return floor(n) end
  if env ~= os.getenv then return 80 end
  local p = io.popen('tput cols 2>/dev/null')
  if p then
    local s = p:read('l')
    p:close()
    n = tonumber(s or '')
    if n and n >= 8 then return floor(n) end
  end
  return 80
end

local cube = {0, 95, 135, 175, 215, 255}

-- CIE L*a*b* of an sRGB colour (D65), for perceptual nearest-colour matching.
local function lab(r, g, b)
  local function lin(v)
    v = v / 255
    return v <= 0.04045 and v / 12.92 or ((v + 0.055) / 1.055) ^ 2.4
  end
  local R, G, B = lin(r), lin(g), lin(b)
  local x = (0.4124 * R + 0.3576 * G + 0.1805 * B) / 0.95047
  local y = 0.2126 * R + 0.7152 * G + 0.0722 * B
  local z = (0.0193 * R + 0.1192 * G + 0.9505 * B) / 1.08883
  local function f(t) return t > 0.008856 and t ^ (1 / 3) or 7.787 * t + 16 / 116 end
  local fx, fy, fz = f(x), f(y), f(z)
  return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)
end

-- The 240 colours of the xterm palette above 15 (6x6x6 cube, 24 grays) in Lab.
local xterm_lab
local function palette_lab()
  if xterm_lab then return xterm_lab end
  xterm_lab = {}
  for n = 16, 255 do
    local r, g, b
    if n >= 232 then
      r = 8 + 10 * (n - 232)
      g, b = r, r
    else
      local k = n - 16
      r, g, b = cube[k // 36 + 1], cube[(k // 6) % 6 + 1], cube[k % 6 + 1]
    end
    local L, A, B = lab(r, g, b)
    xterm_lab[#xterm_lab + 1] = {n, L, A, B}
  end
  return xterm_lab
end

local xterm_memo, xterm_memo_n = {}, 0

-- xterm 256-colour index perceptually nearest to (r, g, b) (CIE76 in L*a*b*).
local function xterm256(r, g, b)
  local key = r * 65536 + g * 256 + b
  local hit = xterm_memo[key]
  if hit then return hit end
  local L, A, B = lab(r, g, b)
  local best, bd = 16, huge
  for _, p in ipairs(palette_lab()) do
    local d = (L - p[2]) ^ 2 + (A - p[3]) ^ 2 + (B - p[4]) ^ 2
    if d < bd then best, bd = p[1], d end
  end
  if xterm_memo_n > 65536 then xterm_memo, xterm_memo_n = {}, 0 end
  xterm_memo[key], xterm_memo_n = best, xterm_memo_n + 1
  return best
end
term.xterm256 = xterm256

local function sgr(mode, fg, r, g, b)
  if mode == 'truecolor' then return fmt('\27[%d;2;%d;%d;%dm', fg and 38 or 48, r, g, b) end
  return fmt('\27[%d;5;%dm', fg and 38 or 48, xterm256(r, g, b))
end

local show_defaults = {width = NONE, height = 40, cmap = 'viridis', mode = 'auto', vmin = NONE,
  vmax = NONE, symmetric = false, string = false, print = true}

--- term.show(M, {width, height = 40, cmap = 'viridis', mode = 'auto'|'truecolor'|'256'|
--- 'ascii', vmin, vmax, symmetric, string = false, print = true})
--- Draws a matrix (or a 1xN vector, or a (1|3)xHxW image) in the terminal: colour modes
--- use half blocks (U+2580, top pixel in the foreground colour, bottom in the
--- background), ascii mode the shades " .:-=+*#%@" (one character per 1x2 pixels).
--- Large matrices are area-averaged to fit the width (COLUMNS, `tput cols`, or 80) and
--- 2 x height pixel rows; small ones are enlarged to about 48 columns. A header gives
--- the shape and the value range, a footer the colour scale. NaN shows mid gray ('?' in
--- ascii). Returns the text when string = true (and prints it unless print = false).
function term.show(M, opts)
  local where = 'agop.show'
  local o = options(opts, show_defaults, where)
  local mode = o.mode == 'auto' and term.term_mode() or o.mode
  if mode ~= 'truecolor' and mode ~= '256' and mode ~= 'ascii' then
    fail(where, "mode must be 'auto', 'truecolor', '256' or 'ascii', got '%s'", tostring(o.mode))
  end
  agop.colormap(o.cmap, 0)
  if type(M) == 'table' and not agop.is_tensor(M) then M = agop.tensor(M) end
  if not agop.is_tensor(M) then fail(where, 'expected a tensor, got %s', type(M)) end
  local out = {}
  local function done()
    local s = table.concat(out)
    if o.print then io.write(s) io.flush() end
    if o.string then return s end
  end
  local d = M:dim()
  local rows, cols
  if d == 0 then
    M = M:reshape(1, 1)
  elseif d == 1 then
    M = M:reshape(1, M:numel())
  elseif d == 3 and (M:size(1) == 1 or M:size(1) == 3) then
    if M:size(1) == 1 then M = M:reshape(M:size(2), M:size(3)) end
  elseif d ~= 2 then
    fail(where, 'expected a matrix, a vector or a (1|3)xHxW image, got %s', check.shape(M))
  end
  local shape = check.shape(M)
  if M:numel() == 0 then
    out[1] = fmt('%s tensor (empty)\n', shape)
    return done()
  end
  d = M:dim()
  rows, cols = M:size(d - 1), M:size(d)
  local lo, hi, nf, nnan, ninf = agop.finite_range(M)
  local width = o.width or (term.term_width() - 1)
  if type(width) ~= 'number' or width < 1 then fail(where, 'width must be a number >= 1') end
  if type(o.height) ~= 'number' or o.height < 2 then fail(where, 'height must be a number >= 2') end
  local maxpx_h = 2 * floor(o.height)
  local s = min(width / cols, maxpx_h / rows)
  if s >= 1 then
    local up = o.width and s or min(s, max(1, 48 / max(rows, cols)))
    s = max(1, floor(up))
    if s >= 2 then s = s - s % 2 end -- whole cells of 2 pixel rows: no straddling
  end
  local pw, ph = max(1, floor(cols * s + 0.5)), max(1, floor(rows * s + 0.5))
  local ph2 = ph + ph % 2
  local c <close> = agop.Canvas(pw, ph2, {bg = '#000000'})
  local ascii = mode == 'ascii'
  local vmin, vmax = c:blit(M, 0, 0, pw, ph, {cmap = ascii and 'gray' or o.cmap,
    vmin = o.vmin, vmax = o.vmax, symmetric = o.symmetric,
    interp = s < 1 and 'area' or 'nearest', nan = ascii and '#ff00ff' or '#808080'})
  local head = fmt('%s tensor', shape)
  if nf > 0 then head = head .. fmt('  min %s  max %s', short(lo), short(hi)) end
  if nnan > 0 then head = head .. fmt('  %d NaN', nnan) end
  if ninf > 0 then head = head .. fmt('  %d inf', ninf) end
  if pw ~= cols or ph ~= rows then head = head .. fmt('  (shown %dx%d)', ph, pw) end
  out[#out + 1] = head .. '\n'
  if ascii then
    for y = 0, ph2 - 1, 2 do
      local line = {}
      for x = 0, pw - 1 do
        local r1, g1, b1 = c:get(x, y)
        local nan1 = r1 == 255 and g1 == 0 and b1 == 255
        local v, nan2 = r1, false
        if y + 1 < ph then
          local r2, g2, b2 = c:get(x, y + 1)
          nan2 = r2 == 255 and g2 == 0 and b2 == 255
          v = (nan1 and r2) or (nan2 and r1) or (r1 + r2) / 2
        end
        if nan1 and (nan2 or y + 1 >= ph) then
          line[#line + 1] = '?'
        else
          local k = floor(v / 255 * (#RAMP - 1) + 0.5)
          line[#line + 1] = RAMP:sub(k + 1, k + 1)
        end
      end
      out[#out + 1] = table.concat(line):gsub('%s+$', '') .. '\n'
    end
    out[#out + 1] = fmt("scale: %s '%s' %s\n", short(vmin), RAMP, short(vmax))
  else
    for y = 0, ph2 - 1, 2 do
      local line = {}
      local pf, pb
      for x = 0, pw - 1 do
        local r1, g1, b1 = c:get(x, y)
        local f = sgr(mode, true, r1, g1, b1)
        if f ~= pf then line[#line + 1] = f; pf = f end
        if y + 1 < ph then
          local b = sgr(mode, false, c:get(x, y + 1))
          if b ~= pb then line[#line + 1] = b; pb = b end
        elseif pb ~= '\27[49m' then
          line[#line + 1] = '\27[49m'
          pb = '\27[49m'
        end
        line[#line + 1] = '\u{2580}'
      end
      out[#out + 1] = table.concat(line) .. '\27[0m\n'
    end
    local n = min(32, max(8, pw))
    local bar = {short(vmin), ' '}
    for k = 0, n - 1 do
      local r, g, b = agop.colormap(o.cmap, k / (n - 1))
      bar[#bar + 1] = sgr(mode, true, r, g, b) .. '\u{2588}'
    end
    bar[#bar + 1] = '\27[0m ' .. short(vmax) .. '\n'
    out[#out + 1] = table.concat(bar)
  end
  return done()
end

return term
