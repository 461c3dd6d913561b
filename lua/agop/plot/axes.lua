-- agop.plot.axes: the shared parts of every figure: style, option and value checks,
-- ticks and number formatting, axes frames, titles, legends, CSV cells.
-- Part of agop.plot (lua/agop/plot.lua), which holds the Figure and the public API.
local agop = require('agop')
local util = require('agop.util')

local fmt, floor, ceil, abs, max, min, huge =
  string.format, math.floor, math.ceil, math.abs, math.max, math.min, math.huge
local log10 = function(x) return math.log(x, 10) end

---------------------------------------------------------------------------------------
-- style (close to matplotlib's defaults)
---------------------------------------------------------------------------------------

local S = {
  bg = '#ffffff',
  fg = '#262626',        -- spines, ticks, text
  text = '#262626',
  title = '#1a1a1a',
  light = '#b0b0b0',     -- frames around images
  legend_edge = '#cccccc',
  grid = '#e6e6e6',
  tick = 5,              -- tick length (outwards)
  pad = 4,               -- tick to label
  fw = 6, fh = 13,       -- one character of the 1x font
  cycle = {'C0', 'C1', 'C2', 'C3', 'C4', 'C5', 'C6', 'C7', 'C8', 'C9'},
  hex = {C0 = '#1f77b4', C1 = '#ff7f0e', C2 = '#2ca02c', C3 = '#d62728', C4 = '#9467bd',
         C5 = '#8c564b', C6 = '#e377c2', C7 = '#7f7f7f', C8 = '#bcbd22', C9 = '#17becf'},
}

local NONE = util.NONE -- a known option without default (util.options)
local options = util.options

local function fail(where, msg, ...) error(where .. ': ' .. fmt(msg, ...), 0) end

local function check_type(where, name, v, want)
  if v ~= nil and type(v) ~= want then
    fail(where, '%s must be a %s, got %s', name, want, type(v))
  end
end

-- A series entry must be a table whose fields are all in `keys` (a set); an unknown one
-- is an error that suggests the closest known field.
local function check_series_fields(where, s, keys)
  if type(s) ~= 'table' then fail(where, 'must be a table, got %s', type(s)) end
  for k in pairs(s) do
    if not keys[k] then
      local near = type(k) == 'string' and util.closest(k, keys)
      fail(where, "unknown field '%s'%s", tostring(k), near and fmt(" (did you mean '%s'?)", near) or '')
    end
  end
end

local function isfinite(v) return v == v and v ~= huge and v ~= -huge end

-- A Lua array of numbers (NaN kept) from a Lua array or a tensor of any shape.
local function to_array(v, where, what)
  if agop.is_tensor(v) then return v:tolist() end
  if type(v) ~= 'table' then
    fail(where, '%s must be an array of numbers or a tensor, got %s', what, type(v))
  end
  local out = {}
  for i = 1, #v do
    local x = v[i]
    if type(x) ~= 'number' then fail(where, '%s[%d] must be a number, got %s', what, i, type(x)) end
    out[i] = x
  end
  return out
end

local function text_w(s, scale)
  local w = agop.text_size(s, {scale = scale or 1})
  return w
end

local function text_h(s, scale)
  local _, h = agop.text_size(s, {scale = scale or 1})
  return h
end

---------------------------------------------------------------------------------------
-- ticks and number formatting
---------------------------------------------------------------------------------------

-- The 1-2-5 step that gives about n intervals over [lo, hi].
local function nice_step(lo, hi, n)
  local raw = (hi - lo) / max(n, 1)
  if not (raw > 0) then return 1 end
  local k = floor(log10(raw))
  local mag = 10 ^ k
  for _, d in ipairs({1, 2, 2.5, 5, 10}) do
    if d == 2.5 then
      -- 2.5 only where it gives round labels (25, 250, ...), never below 1
      if k >= 1 and d * mag >= raw * 0.999 then return d * mag end
    elseif d * mag >= raw * 0.999 then
      return d * mag
    end
  end
  return 10 * mag
end

-- Ticks inside [lo, hi] at multiples of a 1-2-5 step, about n of them.
local function nice_ticks(lo, hi, n)
  local step = nice_step(lo, hi, n)
  local t = {}
  local first = ceil(lo / step - 1e-9)
  local last = floor(hi / step + 1e-9)
  for k = first, last do
    local v = tonumber(fmt('%.12g', k * step)) -- 3 * 0.2 is 0.6, not 0.6000000000000001
    if abs(v) < step * 1e-9 then v = 0 end
    t[#t + 1] = v
  end
  return t, step
end

-- "2.5e5", "1e-5"
local function sci(v, digits)
  local s = fmt('%.' .. digits .. 'e', v)
  local m, e = s:match('^(.-)e([-+]%d+)$')
  if m:find('%.') then m = m:gsub('0+$', ''):gsub('%.$', '') end
  return m .. 'e' .. tostring(tonumber(e))
end

-- Labels for ticks spaced by step: the same number of decimals for all, scientific for
-- very large or very small magnitudes.
local function tick_labels(ticks, step)
  local maxabs = 0
  for _, v in ipairs(ticks) do maxabs = max(maxabs, abs(v)) end
  local k = floor(log10(step) + 1e-9)
  local out = {}
  if maxabs >= 1e5 or (maxabs > 0 and maxabs < 1e-3) then
    -- one exponent for all: 0.5e6 1.0e6 1.5e6
    local e = floor(log10(maxabs) + 1e-9)
    local dec = min(max(0, e - k), 6)
    for i, v in ipairs(ticks) do
      if v == 0 then
        out[i] = '0'
      else
        local m = fmt('%.' .. dec .. 'f', v / 10 ^ e)
        if m:match('^%-0%.?0*$') then m = m:sub(2) end
        out[i] = m .. 'e' .. e
      end
    end
  else
    local dec = max(0, -k)
    if step / 10 ^ k > 2.4 and step / 10 ^ k < 2.6 then dec = max(0, -k + 1) end
    for i, v in ipairs(ticks) do
      local s = fmt('%.' .. min(dec, 10) .. 'f', v)
      if s:match('^%-0%.?0*$') then s = s:sub(2) end
      out[i] = s
    end
  end
  return out
end

-- A short, readable number (legend values, bar labels, the terminal header).
local function short(v)
  if v ~= v then return 'nan' end
  if v == huge then return 'inf' end
  if v == -huge then return '-inf' end
  if v == 0 then return '0' end
  local a = abs(v)
  if a >= 1e5 or a < 1e-3 then return sci(v, 3) end
  local s = fmt('%.4g', v)
  return s
end

---------------------------------------------------------------------------------------
-- drawing helpers
---------------------------------------------------------------------------------------

local function color_of(c)
  if type(c) == 'string' and S.hex[c] then return S.hex[c] end
  return c
end

-- a translucent version of a '#rrggbb' colour (or C0..C9)
local function with_alpha(c, a)
  c = color_of(c)
  if type(c) == 'string' and c:match('^#%x%x%x%x%x%x$') then return fmt('%s%02x', c, a) end
  if type(c) == 'table' then return {c[1], c[2], c[3], a} end
  return c
end

local function text(c, x, y, s, o)
  o = o or {}
  o.color = o.color or S.text
  return c:text(x, y, s, o)
end

-- Splits a pixel-space polyline into dashes (on, off pixels), NaN-separated.
local function dashify(xs, ys, on, off)
  local ox, oy = {}, {}
  local phase, drawing = 0, true
  local function emit(x, y) ox[#ox + 1], oy[#oy + 1] = x, y end
  local function gap() if #ox > 0 and ox[#ox] == ox[#ox] then emit(0 / 0, 0 / 0) end end
  local prevx, prevy
  for i = 1, #xs do
    local x, y = xs[i], ys[i]
    if x ~= x or y ~= y then
      gap()
      prevx = nil
    elseif not prevx then
      if drawing then emit(x, y) end
      prevx, prevy = x, y
    else
      local dx, dy = x - prevx, y - prevy
      local len = math.sqrt(dx * dx + dy * dy)
      local pos = 0
      while pos < len do
        local left = (drawing and on or off) - phase
        if pos + left <= len then
          pos = pos + left
          local px, py = prevx + dx * pos / len, prevy + dy * pos / len
          if drawing then
            emit(px, py)
            gap()
          else
            emit(px, py)
          end
          drawing, phase = not drawing, 0
        else
          phase = phase + (len - pos)
          pos = len
          if drawing then emit(x, y) end
        end
      end
      prevx, prevy = x, y
    end
  end
  return ox, oy
end

-- Frame and ticks of an axes box ax = {x, y, w, h} (integer pixels). xt/yt: lists of
-- {pos = pixel, label = string}; opts: rotate_x (labels vertical), minor_y (positions).
local function draw_axes(c, ax, xt, yt, o)
  local x0, y0, x1, y1 = ax.x, ax.y, ax.x + ax.w, ax.y + ax.h
  c:rect(x0 + 0.5, y0 + 0.5, ax.w - 1, ax.h - 1, {stroke = S.fg, width = 1})
  for _, t in ipairs(yt) do
    local py = floor(t.pos) + 0.5
    c:line(x0 - S.tick, py, x0, py, S.fg, 1)
    if t.label then
      text(c, x0 - S.tick - S.pad, py, t.label, {align = 'right', valign = 'middle'})
    end
  end
  for _, py in ipairs(o.minor_y or {}) do
    py = floor(py) + 0.5
    c:line(x0 - 3, py, x0, py, S.fg, 1)
  end
  for _, px in ipairs(o.minor_x or {}) do
    px = floor(px) + 0.5
    c:line(px, y1, px, y1 + 3, S.fg, 1)
  end
  for _, t in ipairs(xt) do
    local px = floor(t.pos) + 0.5
    c:line(px, y1, px, y1 + S.tick, S.fg, 1)
    if t.label then
      if o.rotate_x then
        text(c, px, y1 + S.tick + S.pad, t.label, {rotate = 90, align = 'center'})
      else
        text(c, px, y1 + S.tick + S.pad, t.label, {align = 'center'})
      end
    end
  end
end

-- Title (2x) centred over [x, x + w), its bottom at y, kept inside the panel R: a title
-- wider than the panel is drawn at 1x in bold instead.
local function draw_title(c, s, x, w, y, R)
  local scale, bold = 2, false
  local tw, th = agop.text_size(s, {scale = scale})
  if tw > R.w - 8 then
    scale, bold = 1, true
    tw, th = agop.text_size(s)
  end
  local tx = x + (w - tw) / 2
  tx = max(R.x + 4, min(tx, R.x + R.w - 4 - tw))
  local bx, by, bw, bh = text(c, tx, y - th, s, {scale = scale, bold = bold, color = S.title})
  return {x = bx, y = by, w = bw, h = bh}
end

-- Legend box: entries {label, color, kind = 'line'|'patch'|'band', dash, marker}.
local function legend_size(entries)
  local lw = 0
  for _, e in ipairs(entries) do lw = max(lw, text_w(e.label)) end
  return 8 + 24 + 6 + lw + 8, 6 + #entries * 17 + 2
end

local function draw_legend(c, x, y, entries)
  local w, h = legend_size(entries)
  c:rect(x, y, w, h, '#ffffffe0')
  c:rect(x + 0.5, y + 0.5, w - 1, h - 1, {stroke = S.legend_edge, width = 1})
  for i, e in ipairs(entries) do
    local cy = y + 6 + (i - 1) * 17 + 7
    local col = color_of(e.color)
    if e.kind == 'patch' then
      c:rect(x + 8, cy - 5, 24, 11, col)
    else
      if e.band then c:rect(x + 8, cy - 6, 24, 13, with_alpha(col, 64)) end
      if e.dash then
        c:line(x + 8, cy + 0.5, x + 17, cy + 0.5, col, 2)
        c:line(x + 23, cy + 0.5, x + 32, cy + 0.5, col, 2)
      else
        c:line(x + 8, cy + 0.5, x + 32, cy + 0.5, col, e.width or 2)
      end
      if e.marker then c:marker(x + 20, cy + 0.5, e.marker, e.marker_size or 6, col) end
    end
    text(c, x + 8 + 24 + 6, cy + 0.5, e.label, {valign = 'middle'})
  end
end

-- Chooses the legend corner inside ax that covers the fewest of the points {x, y}
-- (pixels), in matplotlib's order of preference.
local function legend_place(ax, lw, lh, points, where)
  local m = 8
  local spots = {
    ['upper right'] = {ax.x + ax.w - lw - m, ax.y + m},
    ['upper left'] = {ax.x + m, ax.y + m},
    ['lower left'] = {ax.x + m, ax.y + ax.h - lh - m},
    ['lower right'] = {ax.x + ax.w - lw - m, ax.y + ax.h - lh - m},
    ['center right'] = {ax.x + ax.w - lw - m, ax.y + (ax.h - lh) / 2},
    ['upper center'] = {ax.x + (ax.w - lw) / 2, ax.y + m},
  }
  if where ~= 'best' then
    local s = spots[where]
    return floor(s[1]), floor(s[2])
  end
  local order = {'upper right', 'upper left', 'lower left', 'lower right', 'center right',
    'upper center'}
  local best, bestn
  for _, name in ipairs(order) do
    local s = spots[name]
    local n = 0
    for _, p in ipairs(points) do
      if p[1] >= s[1] - 2 and p[1] <= s[1] + lw + 2 and p[2] >= s[2] - 2 and p[2] <= s[2] + lh + 2 then
        n = n + 1
      end
    end
    if not bestn or n < bestn then best, bestn = name, n end
  end
  local s = spots[best]
  return floor(s[1]), floor(s[2])
end

-- Draws the legend of entries at `where` ('outside': right of ax; else a corner of ax,
-- 'best' the one covering the fewest points) and returns its box {x, y, w, h}.
local function put_legend(c, ax, lw, lh, points, where, entries)
  local lx, ly
  if where == 'outside' then
    lx, ly = ax.x + ax.w + 10, ax.y
  else
    lx, ly = legend_place(ax, lw, lh, points, where)
  end
  draw_legend(c, lx, ly, entries)
  return {x = lx, y = ly, w = lw, h = lh}
end

local function csv_escape(s)
  s = tostring(s)
  if s:find('[,"\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

local function csv_num(v)
  if v == nil then return '' end
  if v ~= v then return 'nan' end
  if math.type(v) == 'integer' then return tostring(v) end
  return fmt('%.9g', v)
end

local function check_lim(where, name, v)
  if v == nil then return nil end
  if type(v) ~= 'table' then fail(where, '%s must be {lo, hi}, got %s', name, type(v)) end
  local lo, hi = v[1], v[2]
  for _, x in ipairs({lo or 0, hi or 0}) do
    if type(x) ~= 'number' or not isfinite(x) then fail(where, '%s values must be finite numbers', name) end
  end
  if lo and hi and lo >= hi then fail(where, '%s must have lo < hi, got {%s, %s}', name, short(lo), short(hi)) end
  return {lo, hi}
end

-- Axis range [lo, hi] with 5% margins around finite data (d: list of arrays).
local function data_range(arrays, pred)
  local lo, hi = huge, -huge
  for _, a in ipairs(arrays) do
    for _, v in ipairs(a) do
      if isfinite(v) and (not pred or pred(v)) then
        if v < lo then lo = v end
        if v > hi then hi = v end
      end
    end
  end
  if lo > hi then return nil end
  return lo, hi
end

local function pad_range(lo, hi, frac)
  if hi == lo then
    local d = lo == 0 and 1 or abs(lo) * 0.1
    return lo - d, hi + d
  end
  local d = (hi - lo) * frac
  return lo - d, hi + d
end

-- Layout of an axes box inside panel R for y tick labels ylabels (widths) and the
-- presence of a title/x label/y label: returns ax = {x, y, w, h}.
local function axes_box(R, o, ylab_w, xlab_h, right)
  local top = R.y + (o.title and (2 * S.fh + 16) or 14)
  local bottom = R.y + R.h - 8 - S.tick - S.pad - xlab_h - (o.xlabel and (S.fh + 8) or 0)
  local left = R.x + 10 + (o.ylabel and (S.fh + 10) or 0) + ylab_w + S.tick + S.pad
  local rgt = R.x + R.w - (right or 18)
  return {x = floor(left), y = floor(top), w = floor(rgt - left), h = floor(bottom - top)}
end

local function draw_axis_labels(c, ax, o, ylab_w, xlab_h, R)
  local tbox
  if o.title then tbox = draw_title(c, o.title, ax.x, ax.w, ax.y - 12, R) end
  if o.xlabel then
    local ly = ax.y + ax.h + S.tick + S.pad + xlab_h + 8
    text(c, ax.x + ax.w / 2, ly, o.xlabel, {align = 'center'})
  end
  if o.ylabel then
    local lx = ax.x - S.tick - S.pad - ylab_w - 10 - S.fh
    text(c, lx, ax.y + ax.h / 2, o.ylabel, {rotate = 90, valign = 'middle'})
  end
  return tbox
end

-- Ticks for a linear axis of len pixels over [lo, hi]: values, labels, the widest label.
local function linear_ticks(lo, hi, len, per_px, label_w_of)
  local n = max(2, floor(len / per_px))
  local ticks, labels
  while true do
    local st
    ticks, st = nice_ticks(lo, hi, n)
    labels = tick_labels(ticks, st)
    if not label_w_of or n <= 2 then break end
    local widest = 0
    for _, l in ipairs(labels) do widest = max(widest, label_w_of(l)) end
    if #ticks <= 1 or (widest + 12) * #ticks <= len then break end
    n = n - 1
  end
  return ticks, labels
end

-- log10 axis ticks over [lo, hi] (exponents): decades, and 2 and 5 when few decades.
local function log_ticks(lo, hi)
  local ticks, labels, minor = {}, {}, {}
  local function label(v)
    local k = floor(log10(v) + 1e-9)
    if v == 10 ^ k and (k < -3 or k > 4) then return '1e' .. k end
    if abs(v) >= 1e5 or abs(v) < 1e-3 then return sci(v, 0) end
    local s = fmt('%.' .. max(0, -k) .. 'f', v)
    return s
  end
  local k0, k1 = floor(lo) - 1, ceil(hi) + 1
  local decades = hi - lo
  local mults = decades < 2 and {1, 2, 5} or {1}
  local step = max(1, ceil(decades / 8))
  for k = k0, k1 do
    for m = 1, 9 do
      local v = m * 10 ^ k
      local e = log10(v)
      if e >= lo - 1e-9 and e <= hi + 1e-9 then
        local major = false
        for _, mm in ipairs(mults) do if m == mm and (m > 1 or k % step == 0) then major = true end end
        if major then
          ticks[#ticks + 1], labels[#labels + 1] = e, label(v)
        elseif decades < 6 then
          minor[#minor + 1] = e
        end
      end
    end
  end
  return ticks, labels, minor
end

return {NONE = NONE, S = S, axes_box = axes_box, check_lim = check_lim,
  check_series_fields = check_series_fields, check_type = check_type, color_of = color_of,
  csv_escape = csv_escape, csv_num = csv_num, dashify = dashify, data_range = data_range,
  draw_axes = draw_axes, draw_axis_labels = draw_axis_labels, draw_legend = draw_legend,
  draw_title = draw_title, fail = fail, isfinite = isfinite, legend_place = legend_place,
  legend_size = legend_size, linear_ticks = linear_ticks, log_ticks = log_ticks,
  nice_step = nice_step, nice_ticks = nice_ticks, options = options, pad_range = pad_range,
  put_legend = put_legend,
  sci = sci, short = short, text = text, text_h = text_h, text_w = text_w,
  tick_labels = tick_labels, to_array = to_array, with_alpha = with_alpha}
