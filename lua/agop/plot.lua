-- agop.plot: figures of matrices and curves as PNG files, and matrices in the terminal.
--
--   local plot = require('agop.plot')
--   plot.heatmap(M, {title = 'conv3 CNFM', symmetric = true}):save('nfm.png')
--   plot.images({w1, w2, w3}, {titles = {'a', 'b', 'c'}, cmap = 'gray'}):save('filters.png')
--   plot.lines{series = {{x = xs, y = loss, label = 'train', band = std}},
--              xlabel = 'epoch', ylabel = 'loss', logy = true}:save('loss.png')
--   plot.bars{groups = {'conv1', 'conv2'}, series = {{label = 'rho', values = {.9, .8}}},
--             values = true}:save('corr.png', {csv = true})    -- also writes corr.csv
--   local fig = plot.figure{rows = 1, cols = 2, title = 'layer 3'}
--   fig:panel(1, 'heatmap', nfm, {title = 'CNFM'})
--   fig:panel(2, 'heatmap', agop_half, {title = 'AGOP^1/2'})
--   fig:save('layer3.png')
--   plot.show(M)                                      -- agop.show: draws M in the terminal
--
-- Every plot function returns a Figure: fig:save(path [, {csv = true}]) writes the PNG
-- (and the plotted data as CSV beside it: x.csv, or x.p1.csv, x.p2.csv, ... for several
-- panels) and returns the paths written; fig:render() returns the agop.Canvas;
-- fig:describe() returns a table that says what was drawn (for run.json).
--
-- Conventions. Heatmap rows and columns are labelled 1-based (as Lua indexes them), row
-- 1 at the top. NaN values are drawn mid gray (the colorbar then shows a "NaN" swatch);
-- an all-NaN matrix draws all gray with a [0, 1] colorbar and says so. Curves break at
-- NaN points; with logy, values <= 0 are left out. Unknown options are errors
-- ("plot.heatmap: unknown option 'cmapp' (did you mean 'cmap'?)").
local agop = require('agop')
local util = require('agop.util')
local check = require('agop.check')

local plot = {}

local fmt, floor, ceil, abs, max, min = string.format, math.floor, math.ceil, math.abs,
  math.max, math.min
local log10 = function(x) return math.log(x, 10) end
local huge = math.huge

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
plot.style = S

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
plot.nice_ticks = nice_ticks

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
plot.tick_labels = tick_labels

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
plot.short = short

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

---------------------------------------------------------------------------------------
-- heatmap
---------------------------------------------------------------------------------------

local kinds = {}

local heatmap_defaults = {
  title = NONE, cmap = NONE, vmin = NONE, vmax = NONE, symmetric = NONE, colorbar = true,
  xlabel = NONE, ylabel = NONE, ticks = true, interp = NONE, nan = NONE, aspect = NONE,
}

-- Index ticks 1..n at cell centres: every index when there is room, else 1 and the
-- multiples of a 1-2-5 step.
local function index_ticks(n, len_px, min_gap)
  local maxn = max(1, floor(len_px / min_gap))
  if n <= maxn then
    local t = {}
    for i = 1, n do t[i] = i end
    return t
  end
  local step = nice_step(0, n, maxn)
  step = max(1, floor(step + 0.5))
  local t = {}
  if step <= 2 then
    for i = 1, n, step do t[#t + 1] = i end
  else
    t[1] = 1
    for i = step, n, step do
      if i - 1 >= step / 2 then t[#t + 1] = i end
    end
  end
  return t
end

function kinds.heatmap(M, opts, where)
  where = where or 'plot.heatmap'
  local o = options(opts, heatmap_defaults, where)
  if not agop.is_tensor(M) then fail(where, 'M must be a 2-D tensor, got %s', type(M)) end
  if M:dim() ~= 2 then fail(where, 'M must be a 2-D tensor (rows x cols), got %s', check.shape(M)) end
  local rows, cols = M:size(1), M:size(2)
  if rows == 0 or cols == 0 then fail(where, 'cannot draw the empty %s matrix', check.shape(M)) end
  check_type(where, 'title', o.title, 'string')
  check_type(where, 'xlabel', o.xlabel, 'string')
  check_type(where, 'ylabel', o.ylabel, 'string')
  check_type(where, 'cmap', o.cmap, 'string')
  if o.vmin ~= nil and not (type(o.vmin) == 'number' and isfinite(o.vmin)) then
    fail(where, 'vmin must be a finite number')
  end
  if o.vmax ~= nil and not (type(o.vmax) == 'number' and isfinite(o.vmax)) then
    fail(where, 'vmax must be a finite number')
  end
  if o.vmin and o.vmax and o.vmin > o.vmax then
    fail(where, 'vmin %s is larger than vmax %s', short(o.vmin), short(o.vmax))
  end
  local aspect = o.aspect or (max(rows, cols) > 3 * min(rows, cols) and 'auto' or 'equal')
  if aspect ~= 'equal' and aspect ~= 'auto' then
    fail(where, "aspect must be 'equal' or 'auto', got '%s'", tostring(aspect))
  end
  if o.interp ~= nil and o.interp ~= 'nearest' and o.interp ~= 'bilinear' and o.interp ~= 'area' then
    fail(where, "interp must be 'nearest', 'bilinear' or 'area', got '%s'", tostring(o.interp))
  end
  local cmap = o.cmap
  local sym = o.symmetric
  if sym == nil then sym = cmap ~= nil and cmap:lower():match('^rdbu') ~= nil end
  cmap = cmap or (sym and 'RdBu_r' or 'viridis')
  agop.colormap(cmap, 0) -- checks the name
  local lo, hi, nfinite, nnan = agop.finite_range(M)
  local vmin, vmax = o.vmin, o.vmax
  if nfinite == 0 then lo, hi = 0, 1 end
  if sym then
    local m = max(abs(lo), abs(hi), abs(vmin or 0), abs(vmax or 0))
    vmin, vmax = vmin or -m, vmax or m
  else
    vmin = vmin or (vmax and min(lo, vmax) or lo)
    vmax = vmax or max(hi, vmin)
  end
  M = M:contiguous()

  local spec = {kind = 'heatmap', default_size = {480, 420}}
  function spec.describe()
    return {kind = 'heatmap', title = o.title, shape = {rows, cols}, cmap = cmap,
      vmin = vmin, vmax = vmax, data_min = nfinite > 0 and lo or nil,
      data_max = nfinite > 0 and hi or nil, nan = nnan}
  end
  function spec.csv()
    local out = {}
    local t = M:totable()
    for i = 1, rows do
      local r = {}
      for j = 1, cols do r[j] = csv_num(t[i][j]) end
      out[i] = table.concat(r, ',')
    end
    return table.concat(out, '\n') .. '\n'
  end
  function spec.draw(c, R)
    local top = R.y + (o.title and (2 * S.fh + 14) or 12)
    local bottom = R.y + R.h - 10 - (o.ticks and (S.tick + S.pad + S.fh) or 0)
      - (o.xlabel and (S.fh + 6) or 0)
    -- colorbar ticks first: their labels set the right margin
    local cb_w, cb_gap = 16, 14
    local right_extra = 0
    local avail_h = bottom - top
    local cticks, clabels = {}, {}
    if o.colorbar then
      if vmax > vmin then
        local st
        cticks, st = nice_ticks(vmin, vmax, max(2, min(8, floor(avail_h / 40))))
        clabels = tick_labels(cticks, st)
      else
        cticks, clabels = {vmin}, {short(vmin)}
      end
      local lw = 0
      for _, l in ipairs(clabels) do lw = max(lw, text_w(l)) end
      right_extra = cb_gap + cb_w + S.tick + S.pad + lw
    end
    local ylab_w = o.ylabel and (S.fh + 8) or 0
    local ytick_w = o.ticks and (text_w(tostring(rows)) + S.tick + S.pad) or 0
    local left_pad = 10 + ylab_w + ytick_w
    local avail_w = R.w - left_pad - right_extra - 14
    if avail_w < 1 or avail_h < 1 then
      text(c, R.x + 4, R.y + 4, 'panel too small')
      return {}
    end
    local s = min(avail_w / cols, avail_h / rows)
    if s >= 2 then s = floor(s) end
    local iw, ih = max(1, floor(cols * s + 0.5)), max(1, floor(rows * s + 0.5))
    if aspect == 'auto' then -- fill the area: cells need not be square
      local sx, sy = avail_w / cols, avail_h / rows
      if sx >= 2 then sx = floor(sx) end
      if sy >= 2 then sy = floor(sy) end
      iw, ih = max(1, floor(cols * sx + 0.5)), max(1, floor(rows * sy + 0.5))
      s = min(sx, sy)
    end
    local block = ylab_w + ytick_w + iw + right_extra
    local ix = floor(R.x + (R.w - block) / 2 + ylab_w + ytick_w)
    local iy = floor(top + (avail_h - ih) / 2)
    local interp = o.interp or (s >= 1 and 'nearest' or 'area')
    c:blit(M, ix, iy, iw, ih, {cmap = cmap, vmin = vmin, vmax = vmax, interp = interp,
      nan = o.nan})
    local ax = {x = ix - 1, y = iy - 1, w = iw + 2, h = ih + 2}
    local xt, yt = {}, {}
    if o.ticks then
      for _, j in ipairs(index_ticks(cols, iw, max(24, text_w(tostring(cols)) + 20))) do
        xt[#xt + 1] = {pos = ix + (j - 0.5) * iw / cols, label = tostring(j)}
      end
      for _, i in ipairs(index_ticks(rows, ih, rows > 30 and 34 or 22)) do
        yt[#yt + 1] = {pos = iy + (i - 0.5) * ih / rows, label = tostring(i)}
      end
    end
    draw_axes(c, ax, xt, yt, {})
    local layout = {image = {x = ix, y = iy, w = iw, h = ih}, vmin = vmin, vmax = vmax,
      cmap = cmap}
    if o.title then layout.title = draw_title(c, o.title, ax.x, ax.w, ax.y - 10, R) end
    if o.xlabel then
      local ly = ax.y + ax.h + (o.ticks and (S.tick + S.pad + S.fh) or 0) + 6
      text(c, ax.x + ax.w / 2, ly, o.xlabel, {align = 'center'})
    end
    if o.ylabel then
      local lx = ax.x - ytick_w - 8 - S.fh
      text(c, lx, ax.y + ax.h / 2, o.ylabel, {rotate = 90, valign = 'middle'})
    end
    if o.colorbar then
      local cx, cy = ax.x + ax.w + cb_gap, ax.y
      local n = 256
      local grad = {}
      for k = 1, n do grad[k] = vmax - (vmax - vmin) * (k - 1) / (n - 1) end
      local g = agop.from_table(grad, n, 1)
      c:blit(g, cx + 1, cy + 1, cb_w - 2, ax.h - 2, {cmap = cmap, vmin = vmin, vmax = vmax,
        interp = 'bilinear'})
      local cyt = {}
      for k, v in ipairs(cticks) do
        local frac = vmax > vmin and (v - vmin) / (vmax - vmin) or 0.5
        cyt[k] = {pos = cy + 1 + (1 - frac) * (ax.h - 3), label = clabels[k]}
      end
      c:rect(cx + 0.5, cy + 0.5, cb_w - 1, ax.h - 1, {stroke = S.fg, width = 1})
      layout.colorbar = {x = cx + 1, y = cy + 1, w = cb_w - 2, h = ax.h - 2}
      for _, t in ipairs(cyt) do
        local py = floor(t.pos) + 0.5
        c:line(cx + cb_w, py, cx + cb_w + S.tick, py, S.fg, 1)
        text(c, cx + cb_w + S.tick + S.pad, py, t.label, {valign = 'middle'})
      end
      local note_y = cy + ax.h + 6
      if nfinite == 0 then
        text(c, cx, note_y, 'all NaN')
      elseif nnan > 0 then
        c:rect(cx, note_y, cb_w, 11, o.nan or '#808080')
        c:rect(cx + 0.5, note_y + 0.5, cb_w - 1, 10, {stroke = S.fg, width = 1})
        text(c, cx + cb_w + S.pad, note_y + 5.5, 'NaN', {valign = 'middle'})
      end
    end
    return layout
  end
  return spec
end

---------------------------------------------------------------------------------------
-- images (a grid of small matrices: filters, eigenvectors, feature maps)
---------------------------------------------------------------------------------------

local images_defaults = {
  cols = NONE, titles = NONE, normalize = 'minmax', cmap = 'gray', title = NONE,
  vmin = NONE, vmax = NONE, symmetric = false, scale = NONE, interp = NONE,
}

function kinds.images(list, opts, where)
  where = where or 'plot.images'
  local o = options(opts, images_defaults, where)
  if agop.is_tensor(list) then
    fail(where, 'expected a list of tensors; wrap a single tensor as {t}')
  end
  if type(list) ~= 'table' then fail(where, 'expected a list of tensors, got %s', type(list)) end
  local n = #list
  if n == 0 then fail(where, 'the list of images is empty') end
  check_type(where, 'title', o.title, 'string')
  check_type(where, 'cmap', o.cmap, 'string')
  agop.colormap(o.cmap, 0)
  if o.normalize ~= 'minmax' and o.normalize ~= 'none' then
    fail(where, "normalize must be 'minmax' or 'none', got '%s'", tostring(o.normalize))
  end
  if o.titles ~= nil then
    if type(o.titles) ~= 'table' then fail(where, 'titles must be a list of strings') end
    for i = 1, n do
      if o.titles[i] ~= nil and type(o.titles[i]) ~= 'string' then
        fail(where, 'titles[%d] must be a string', i)
      end
    end
  end
  local maxh, maxw = 0, 0
  local glo, ghi = huge, -huge
  local imgs = {}
  for i = 1, n do
    local t = list[i]
    if not agop.is_tensor(t) then fail(where, 'image %d is a %s, expected a tensor', i, type(t)) end
    local d = t:dim()
    if not (d == 2 or (d == 3 and (t:size(1) == 1 or t:size(1) == 3))) then
      fail(where, 'image %d must be HxW or (1 or 3)xHxW, got %s', i, check.shape(t))
    end
    if t:numel() == 0 then fail(where, 'image %d is empty (%s)', i, check.shape(t)) end
    local h, w = t:size(d - 1), t:size(d)
    maxh, maxw = max(maxh, h), max(maxw, w)
    local lo, hi, nf = agop.finite_range(t)
    if nf > 0 then glo, ghi = min(glo, lo), max(ghi, hi) end
    imgs[i] = {t = t:contiguous(), h = h, w = w, lo = lo, hi = hi, nf = nf}
  end
  if glo > ghi then glo, ghi = 0, 1 end
  local ncols = o.cols or min(n, ceil(math.sqrt(n)))
  if math.type(ncols) ~= 'integer' and not (type(ncols) == 'number' and ncols == floor(ncols)) then
    fail(where, 'cols must be an integer')
  end
  ncols = floor(ncols)
  if ncols < 1 then fail(where, 'cols must be >= 1, got %d', ncols) end
  ncols = min(ncols, n)
  local nrows = ceil(n / ncols)
  local maxdim = max(maxh, maxw)
  local scale = o.scale or (maxdim <= 96 and max(1, floor(96 / maxdim)) or 256 / maxdim)
  scale = min(scale, 256 / maxdim)
  local has_titles = o.titles ~= nil
  -- room for the image titles (up to 200 pixels; longer ones are shortened with '~')
  local title_w = 0
  if has_titles then
    for i = 1, n do
      if o.titles[i] then title_w = max(title_w, min(200, text_w(o.titles[i]) + 6)) end
    end
  end
  local cell_w = max(floor(maxw * scale + 0.5), title_w) + 12
  local cell_h = floor(maxh * scale + 0.5) + 12 + (has_titles and (S.fh + 3) or 0)
  local title_h = o.title and (2 * S.fh + 16) or 0
  local fig_w = max(ncols * cell_w + 24, o.title and text_w(o.title, 2) + 48 or 0)

  local function range_of(im)
    local lo, hi
    if o.normalize == 'minmax' then
      lo, hi = im.lo, im.hi
      if im.nf == 0 then lo, hi = 0, 1 end
    else
      lo, hi = glo, ghi
    end
    if o.symmetric then
      local m = max(abs(lo), abs(hi))
      lo, hi = -m, m
    end
    return o.vmin or lo, o.vmax or max(hi, o.vmin or hi)
  end

  local spec = {kind = 'images', default_size = {fig_w, nrows * cell_h + title_h + 16}}
  function spec.describe()
    local shapes = {}
    for i, im in ipairs(imgs) do shapes[i] = check.shape(im.t) end
    return {kind = 'images', title = o.title, count = n, cols = ncols, shapes = shapes,
      cmap = o.cmap, normalize = o.normalize, titles = o.titles}
  end
  function spec.csv()
    local out = {'image,channel,row,col,value'}
    for i, im in ipairs(imgs) do
      local flat = im.t:tolist()
      local ch = im.t:dim() == 3 and im.t:size(1) or 1
      local k = 0
      for c = 1, ch do
        for r = 1, im.h do
          for q = 1, im.w do
            k = k + 1
            out[#out + 1] = fmt('%d,%d,%d,%d,%s', i, c, r, q, csv_num(flat[k]))
          end
        end
      end
    end
    return table.concat(out, '\n') .. '\n'
  end
  function spec.draw(c, R)
    local avail_w, avail_h = R.w - 16, R.h - title_h - 16
    local tpad = has_titles and (S.fh + 3) or 0
    local s = min((avail_w / ncols - 12) / maxw, (avail_h / nrows - 12 - tpad) / maxh)
    if o.scale then s = min(s, o.scale) end
    if s >= 1 then s = floor(s) end
    if s <= 0 then
      text(c, R.x + 4, R.y + 4, 'panel too small')
      return {}
    end
    -- cells just large enough for the images (and their titles), the grid centred
    local cw = max(floor(maxw * s + 0.5), title_w) + 12
    cw = min(cw, floor(avail_w / ncols))
    local ch = floor(maxh * s + 0.5) + 12 + tpad
    local gw, gh = ncols * cw, nrows * ch
    local x0 = floor(R.x + (R.w - gw) / 2)
    local top = floor(R.y + title_h + 8 + (avail_h - gh) / 2)
    local layout = {images = {}}
    if o.title then layout.title = draw_title(c, o.title, R.x, R.w, top - 6, R) end
    for i, im in ipairs(imgs) do
      local r, q = (i - 1) // ncols, (i - 1) % ncols
      local iw, ih = max(1, floor(im.w * s + 0.5)), max(1, floor(im.h * s + 0.5))
      local cx, cy = x0 + q * cw, top + r * ch
      local ix = floor(cx + (cw - iw) / 2)
      local iy = floor(cy + tpad + (ch - tpad - ih) / 2)
      local lo, hi = range_of(im)
      if lo > hi then lo, hi = hi, lo end
      local interp = o.interp or (s >= 1 and 'nearest' or 'area')
      c:blit(im.t, ix, iy, iw, ih, {cmap = o.cmap, vmin = lo, vmax = hi, interp = interp})
      layout.images[i] = {x = ix, y = iy, w = iw, h = ih, vmin = lo, vmax = hi}
      c:rect(ix - 0.5, iy - 0.5, iw + 1, ih + 1, {stroke = S.light, width = 1})
      local tt = has_titles and o.titles[i]
      if tt then
        local maxc = max(1, floor((cw - 4) / S.fw))
        if utf8.len(tt) and utf8.len(tt) > maxc then
          tt = tt:sub(1, utf8.offset(tt, maxc) - 1) .. '~'
        end
        text(c, ix + iw / 2, iy - 3 - S.fh, tt, {align = 'center'})
      end
    end
    return layout
  end
  return spec
end

---------------------------------------------------------------------------------------
-- lines
---------------------------------------------------------------------------------------

local lines_defaults = {
  series = NONE, xlabel = NONE, ylabel = NONE, title = NONE, xlim = NONE, ylim = NONE,
  logy = false, logx = false, legend = 'best', grid = false,
}
local series_keys = {x = true, y = true, label = true, band = true, color = true, width = true,
  dash = true, marker = true, marker_size = true}

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

function kinds.lines(opts, _, where)
  where = where or 'plot.lines'
  local o = options(opts, lines_defaults, where)
  if type(o.series) ~= 'table' then fail(where, 'series must be a list of {y = ...} tables') end
  if #o.series == 0 then fail(where, 'series is empty') end
  for _, k in ipairs({'title', 'xlabel', 'ylabel'}) do check_type(where, k, o[k], 'string') end
  o.xlim = check_lim(where, 'xlim', o.xlim)
  o.ylim = check_lim(where, 'ylim', o.ylim)
  if o.logy and o.ylim and ((o.ylim[1] and o.ylim[1] <= 0) or (o.ylim[2] and o.ylim[2] <= 0)) then
    fail(where, 'ylim must be positive with logy')
  end
  if o.logx and o.xlim and ((o.xlim[1] and o.xlim[1] <= 0) or (o.xlim[2] and o.xlim[2] <= 0)) then
    fail(where, 'xlim must be positive with logx')
  end
  local legend_where = {best = true, ['upper right'] = true, ['upper left'] = true,
    ['lower left'] = true, ['lower right'] = true, ['center right'] = true,
    ['upper center'] = true, outside = true}
  if o.legend ~= false and not legend_where[o.legend] then
    fail(where, "legend must be false, 'best', 'outside' or a corner like 'upper right', got '%s'",
      tostring(o.legend))
  end
  local series = {}
  for i, s in ipairs(o.series) do
    local sw = fmt('%s: series[%d]', where, i)
    check_series_fields(sw, s, series_keys)
    if s.y == nil then fail(sw, 'needs y') end
    local y = to_array(s.y, sw, 'y')
    local x
    if s.x ~= nil then
      x = to_array(s.x, sw, 'x')
      if #x ~= #y then fail(sw, 'x has %d values but y has %d', #x, #y) end
    else
      x = {}
      for k = 1, #y do x[k] = k end
    end
    local lo, hi
    if s.band ~= nil then
      if type(s.band) == 'table' and not agop.is_tensor(s.band) and (s.band.lo or s.band.hi) then
        lo, hi = to_array(s.band.lo, sw, 'band.lo'), to_array(s.band.hi, sw, 'band.hi')
      else
        local sd = to_array(s.band, sw, 'band')
        if #sd ~= #y then fail(sw, 'band has %d values but y has %d', #sd, #y) end
        lo, hi = {}, {}
        for k = 1, #y do lo[k], hi[k] = y[k] - sd[k], y[k] + sd[k] end
      end
      if #lo ~= #y or #hi ~= #y then fail(sw, 'band.lo and band.hi must have %d values', #y) end
    end
    check_type(sw, 'label', s.label, 'string')
    if s.width ~= nil and not (type(s.width) == 'number' and s.width > 0 and s.width <= 50) then
      fail(sw, 'width must be a number in (0, 50]')
    end
    series[i] = {x = x, y = y, lo = lo, hi = hi, label = s.label,
      color = s.color or S.cycle[(i - 1) % #S.cycle + 1], width = s.width or 2,
      dash = s.dash, marker = s.marker, marker_size = s.marker_size or 6}
  end

  -- data ranges
  local xs, ys = {}, {}
  for _, s in ipairs(series) do
    xs[#xs + 1] = s.x
    ys[#ys + 1] = s.y
    if s.lo then ys[#ys + 1], ys[#ys + 2] = s.lo, s.hi end
  end
  local xlo, xhi = data_range(xs, o.logx and function(v) return v > 0 end or nil)
  if not xlo then xlo, xhi = o.logx and 0.1 or 0, o.logx and 10 or 1 end
  local tx = o.logx and log10 or function(v) return v end
  xlo, xhi = tx(xlo), tx(xhi)
  local ylo, yhi
  local pos = o.logy and function(v) return v > 0 end or nil
  ylo, yhi = data_range(ys, pos)
  if not ylo then ylo, yhi = o.logy and 0.1 or 0, o.logy and 10 or 1 end
  local ty = o.logy and log10 or function(v) return v end
  ylo, yhi = ty(ylo), ty(yhi)
  xlo, xhi = pad_range(xlo, xhi, 0.03)
  ylo, yhi = pad_range(ylo, yhi, 0.05)
  if o.xlim then
    xlo = o.xlim[1] and tx(o.xlim[1]) or xlo
    xhi = o.xlim[2] and tx(o.xlim[2]) or xhi
  end
  if o.ylim then
    ylo = o.ylim[1] and ty(o.ylim[1]) or ylo
    yhi = o.ylim[2] and ty(o.ylim[2]) or yhi
  end
  if xlo >= xhi then xlo, xhi = pad_range(xlo, xlo, 0) end
  if ylo >= yhi then ylo, yhi = pad_range(ylo, ylo, 0) end

  local entries = {}
  for _, s in ipairs(series) do
    if s.label then
      entries[#entries + 1] = {label = s.label, color = s.color, dash = s.dash,
        band = s.lo ~= nil, width = s.width, marker = s.marker, marker_size = s.marker_size}
    end
  end

  local spec = {kind = 'lines', default_size = {640, 420}}
  function spec.describe()
    local d = {kind = 'lines', title = o.title, xlabel = o.xlabel, ylabel = o.ylabel,
      logy = o.logy or nil, logx = o.logx or nil, series = {}}
    for i, s in ipairs(series) do
      d.series[i] = {label = s.label, points = #s.y, band = s.lo ~= nil}
    end
    return d
  end
  function spec.csv()
    local out = {'series,label,x,y,lo,hi'}
    for i, s in ipairs(series) do
      for k = 1, #s.y do
        out[#out + 1] = fmt('%d,%s,%s,%s,%s,%s', i, csv_escape(s.label or ''), csv_num(s.x[k]),
          csv_num(s.y[k]), csv_num(s.lo and s.lo[k]), csv_num(s.hi and s.hi[k]))
      end
    end
    return table.concat(out, '\n') .. '\n'
  end
  function spec.draw(c, R)
    -- y ticks depend only on the height; they set the left margin
    local probe = axes_box(R, o, 0, S.fh)
    local yt_v, yt_l, minor
    if o.logy then
      yt_v, yt_l, minor = log_ticks(ylo, yhi)
    else
      yt_v, yt_l = linear_ticks(ylo, yhi, probe.h, 48)
    end
    local ylab_w = 0
    for _, l in ipairs(yt_l) do ylab_w = max(ylab_w, text_w(l)) end
    local right = 18
    local lw, lh = legend_size(entries)
    if o.legend == 'outside' and #entries > 0 then right = lw + 26 end
    local ax = axes_box(R, o, ylab_w, S.fh, right)
    if ax.w < 10 or ax.h < 10 then
      text(c, R.x + 4, R.y + 4, 'panel too small')
      return {}
    end
    local xt_v, xt_l, minor_x
    if o.logx then
      xt_v, xt_l, minor_x = log_ticks(xlo, xhi)
    else
      xt_v, xt_l = linear_ticks(xlo, xhi, ax.w, 80, text_w)
    end
    local function pxt(e) return ax.x + (e - xlo) / (xhi - xlo) * ax.w end
    local function px(v) return pxt(tx(v)) end
    local function py(v) return ax.y + ax.h - (ty(v) - ylo) / (yhi - ylo) * ax.h end
    local function pyt(e) return ax.y + ax.h - (e - ylo) / (yhi - ylo) * ax.h end
    if o.grid then
      for _, v in ipairs(yt_v) do
        local y = floor(pyt(v)) + 0.5
        c:line(ax.x, y, ax.x + ax.w, y, S.grid, 1)
      end
      for _, v in ipairs(xt_v) do
        local x = floor(pxt(v)) + 0.5
        c:line(x, ax.y, x, ax.y + ax.h, S.grid, 1)
      end
    end
    c:clip(ax.x + 1, ax.y + 1, ax.w - 2, ax.h - 2)
    local points = {}
    local function keep(v) return isfinite(v) and (not o.logy or v > 0) end
    local function keepx(v) return isfinite(v) and (not o.logx or v > 0) end
    for _, s in ipairs(series) do
      if s.lo then
        -- one polygon per run of finite points
        local run = {}
        local function flush()
          if #run >= 2 then
            local bx, by = {}, {}
            for _, k in ipairs(run) do bx[#bx + 1], by[#by + 1] = px(s.x[k]), py(s.hi[k]) end
            for r = #run, 1, -1 do
              local k = run[r]
              bx[#bx + 1], by[#by + 1] = px(s.x[k]), py(s.lo[k])
            end
            c:polygon(bx, by, with_alpha(s.color, 56))
          end
          run = {}
        end
        for k = 1, #s.y do
          if keepx(s.x[k]) and keep(s.lo[k]) and keep(s.hi[k]) then
            run[#run + 1] = k
          else
            flush()
          end
        end
        flush()
      end
    end
    for _, s in ipairs(series) do
      local lx, ly = {}, {}
      for k = 1, #s.y do
        if keepx(s.x[k]) and keep(s.y[k]) then
          lx[k], ly[k] = px(s.x[k]), py(s.y[k])
          if k % max(1, #s.y // 400) == 0 then points[#points + 1] = {lx[k], ly[k]} end
        else
          lx[k], ly[k] = 0 / 0, 0 / 0
        end
      end
      local col = color_of(s.color)
      if s.dash then
        local dx, dy = dashify(lx, ly, 3.7 * s.width, 1.6 * s.width)
        c:polyline(dx, dy, col, s.width)
      else
        c:polyline(lx, ly, col, s.width)
      end
      if s.marker then
        for k = 1, #lx do
          if lx[k] == lx[k] then c:marker(lx[k], ly[k], s.marker, s.marker_size, col) end
        end
      end
      if s.lo then
        for k = 1, #s.y, max(1, #s.y // 50) do
          if keepx(s.x[k]) and keep(s.lo[k]) and keep(s.hi[k]) then
            points[#points + 1] = {px(s.x[k]), py(s.lo[k])}
            points[#points + 1] = {px(s.x[k]), py(s.hi[k])}
          end
        end
      end
    end
    c:clip()
    local xt, yt, minor_y = {}, {}, {}
    for k, v in ipairs(xt_v) do xt[k] = {pos = pxt(v), label = xt_l[k]} end
    for k, v in ipairs(yt_v) do yt[k] = {pos = pyt(v), label = yt_l[k]} end
    for _, e in ipairs(minor or {}) do minor_y[#minor_y + 1] = pyt(e) end
    local minor_xs = {}
    for _, e in ipairs(minor_x or {}) do minor_xs[#minor_xs + 1] = pxt(e) end
    draw_axes(c, ax, xt, yt, {minor_y = minor_y, minor_x = minor_xs})
    local layout = {axes = ax, xlim = {xlo, xhi}, ylim = {ylo, yhi}, logy = o.logy,
      logx = o.logx}
    layout.title = draw_axis_labels(c, ax, o, ylab_w, S.fh, R)
    if o.legend and #entries > 0 then
      local lx, ly
      if o.legend == 'outside' then
        lx, ly = ax.x + ax.w + 10, ax.y
      else
        lx, ly = legend_place(ax, lw, lh, points, o.legend)
      end
      draw_legend(c, lx, ly, entries)
      layout.legend = {x = lx, y = ly, w = lw, h = lh}
    end
    return layout
  end
  return spec
end

---------------------------------------------------------------------------------------
-- bars
---------------------------------------------------------------------------------------

local bars_defaults = {
  groups = NONE, series = NONE, ylabel = NONE, xlabel = NONE, title = NONE, ylim = NONE,
  values = false, legend = 'auto', grid = false,
}
local bar_series_keys = {label = true, values = true, color = true, errors = true}

function kinds.bars(opts, _, where)
  where = where or 'plot.bars'
  local o = options(opts, bars_defaults, where)
  if type(o.groups) ~= 'table' or #o.groups == 0 then
    fail(where, 'groups must be a non-empty list of names')
  end
  local groups = {}
  for i, g in ipairs(o.groups) do
    if type(g) ~= 'string' and type(g) ~= 'number' then
      fail(where, 'groups[%d] must be a string, got %s', i, type(g))
    end
    groups[i] = tostring(g)
  end
  if type(o.series) ~= 'table' or #o.series == 0 then
    fail(where, 'series must be a non-empty list of {values = ...} tables')
  end
  for _, k in ipairs({'title', 'xlabel', 'ylabel'}) do check_type(where, k, o[k], 'string') end
  o.ylim = check_lim(where, 'ylim', o.ylim)
  local vfmt = o.values
  if vfmt == true then vfmt = '%.2f' end
  if vfmt and type(vfmt) ~= 'string' then fail(where, "values must be true, false or a format like '%%.3f'") end
  if vfmt then
    local ok = pcall(fmt, vfmt, 1.5)
    if not ok then fail(where, "values format '%s' does not format a number", vfmt) end
  end
  local legend_where = {auto = true, best = true, ['upper right'] = true, ['upper left'] = true,
    ['lower left'] = true, ['lower right'] = true, outside = true}
  if o.legend ~= false and not legend_where[o.legend] then
    fail(where, "legend must be false, 'auto', 'best', 'outside' or a corner, got '%s'",
      tostring(o.legend))
  end
  local ng = #groups
  local series = {}
  for i, s in ipairs(o.series) do
    local sw = fmt('%s: series[%d]', where, i)
    check_series_fields(sw, s, bar_series_keys)
    if s.values == nil then fail(sw, 'needs values') end
    local v = to_array(s.values, sw, 'values')
    if #v ~= ng then fail(sw, 'has %d values for %d groups', #v, ng) end
    local e
    if s.errors ~= nil then
      e = to_array(s.errors, sw, 'errors')
      if #e ~= ng then fail(sw, 'has %d errors for %d groups', #e, ng) end
    end
    check_type(sw, 'label', s.label, 'string')
    series[i] = {label = s.label, values = v, errors = e,
      color = s.color or S.cycle[(i - 1) % #S.cycle + 1]}
  end
  local ns = #series
  local lo, hi = 0, 0
  for _, s in ipairs(series) do
    for k = 1, ng do
      local v, e = s.values[k], s.errors and s.errors[k] or 0
      if isfinite(v) then
        if isfinite(e) then e = abs(e) else e = 0 end
        lo, hi = min(lo, v - e), max(hi, v + e)
      end
    end
  end
  if lo == hi then hi = 1 end
  local span = hi - lo
  local head = vfmt and 0.12 or 0.05
  if hi > 0 then hi = hi + span * head end
  if lo < 0 then lo = lo - span * head end
  if o.ylim then lo, hi = o.ylim[1] or lo, o.ylim[2] or hi end
  if lo >= hi then lo, hi = pad_range(lo, lo, 0) end

  local entries = {}
  for _, s in ipairs(series) do
    if s.label then entries[#entries + 1] = {label = s.label, color = s.color, kind = 'patch'} end
  end

  local spec = {kind = 'bars', default_size = {max(480, 110 * ng + 140), 420}}
  function spec.describe()
    local d = {kind = 'bars', title = o.title, ylabel = o.ylabel, groups = groups, series = {}}
    for i, s in ipairs(series) do d.series[i] = {label = s.label, values = s.values} end
    return d
  end
  function spec.csv()
    local out = {'group,series,value,error'}
    for k = 1, ng do
      for _, s in ipairs(series) do
        out[#out + 1] = fmt('%s,%s,%s,%s', csv_escape(groups[k]), csv_escape(s.label or ''),
          csv_num(s.values[k]), csv_num(s.errors and s.errors[k]))
      end
    end
    return table.concat(out, '\n') .. '\n'
  end
  function spec.draw(c, R)
    local probe = axes_box(R, o, 0, S.fh)
    local yt_v, yt_l = linear_ticks(lo, hi, probe.h, 48)
    local ylab_w = 0
    for _, l in ipairs(yt_l) do ylab_w = max(ylab_w, text_w(l)) end
    local lw, lh = legend_size(entries)
    local right = (o.legend == 'outside' and #entries > 0) and (lw + 26) or 18
    -- group labels: horizontal when they fit under their slot, else vertical
    local widest = 0
    for _, g in ipairs(groups) do widest = max(widest, text_w(g)) end
    local ax = axes_box(R, o, ylab_w, S.fh, right)
    local slot = ax.w / ng
    local rotate = widest + 6 > slot
    local xlab_h = rotate and widest or S.fh
    ax = axes_box(R, o, ylab_w, xlab_h, right)
    if ax.w < 10 or ax.h < 10 then
      text(c, R.x + 4, R.y + 4, 'panel too small')
      return {}
    end
    slot = ax.w / ng
    local function py(v) return ax.y + ax.h - (v - lo) / (hi - lo) * ax.h end
    if o.grid then
      for _, v in ipairs(yt_v) do
        local y = floor(py(v)) + 0.5
        c:line(ax.x, y, ax.x + ax.w, y, S.grid, 1)
      end
    end
    c:clip(ax.x + 1, ax.y + 1, ax.w - 2, ax.h - 2)
    local groupw = slot * 0.8
    local bw = groupw / ns
    local y0 = py(min(max(0, lo), hi))
    local points = {}
    local rects = {}
    for k = 1, ng do
      for i, s in ipairs(series) do
        local v = s.values[k]
        local bx = ax.x + (k - 1) * slot + (slot - groupw) / 2 + (i - 1) * bw
        local x0, x1 = floor(bx + 0.5), floor(bx + bw + 0.5)
        if ns > 1 and bw >= 6 then x1 = x1 - 1 end -- a hairline gap between bars
        if isfinite(v) then
          local yv = py(v)
          local top, bot = min(yv, y0), max(yv, y0)
          top, bot = floor(top + 0.5), floor(bot + 0.5)
          c:rect(x0, top, max(1, x1 - x0), max(bot - top, v ~= 0 and 1 or 0), color_of(s.color))
          rects[#rects + 1] = {group = k, series = i, x = x0, y = top, w = max(1, x1 - x0),
            h = bot - top}
          for f = 0, 4 do -- the bar's body, so that the legend avoids it
            local yy = top + (bot - top) * f / 4
            points[#points + 1] = {x0, yy}
            points[#points + 1] = {(x0 + x1) / 2, yy}
            points[#points + 1] = {x1, yy}
          end
          local e = s.errors and s.errors[k]
          if e and isfinite(e) and e ~= 0 then
            local cx = floor((x0 + x1) / 2) + 0.5
            local ya, yb = py(v - abs(e)), py(v + abs(e))
            c:line(cx, ya, cx, yb, S.fg, 1.5)
            local cap = max(2, min(6, (x1 - x0) / 4))
            c:line(cx - cap, floor(ya) + 0.5, cx + cap, floor(ya) + 0.5, S.fg, 1.5)
            c:line(cx - cap, floor(yb) + 0.5, cx + cap, floor(yb) + 0.5, S.fg, 1.5)
            points[#points + 1] = {cx, yb}
          end
          local label = vfmt and fmt(vfmt, v)
          if label and text_w(label) <= max(x1 - x0, 1) * 1.8 + 4 then
            -- (labels much wider than their bar would overlap their neighbours)
            local ye = s.errors and s.errors[k] and isfinite(s.errors[k]) and abs(s.errors[k]) or 0
            local tx, ty, tw, th
            if v >= 0 then
              tx, ty, tw, th = text(c, (x0 + x1) / 2, py(v + ye) - 3, label,
                {align = 'center', valign = 'bottom'})
            else
              tx, ty, tw, th = text(c, (x0 + x1) / 2, py(v - ye) + 3, label, {align = 'center'})
            end
            points[#points + 1] = {tx, ty}
            points[#points + 1] = {tx + tw, ty}
            points[#points + 1] = {tx, ty + th}
            points[#points + 1] = {tx + tw, ty + th}
          end
        end
      end
    end
    c:clip()
    -- the zero line, when zero is inside the range and not on the frame
    if lo < 0 and hi > 0 then
      local yz = floor(py(0)) + 0.5
      c:line(ax.x, yz, ax.x + ax.w, yz, S.fg, 1)
    end
    local xt, yt = {}, {}
    for k, g in ipairs(groups) do xt[k] = {pos = ax.x + (k - 0.5) * slot, label = g} end
    for k, v in ipairs(yt_v) do yt[k] = {pos = py(v), label = yt_l[k]} end
    draw_axes(c, ax, xt, yt, {rotate_x = rotate})
    local layout = {axes = ax, ylim = {lo, hi}, bars = rects}
    layout.title = draw_axis_labels(c, ax, o, ylab_w, xlab_h, R)
    -- 'auto': a legend when there are several series (one is named by the y label)
    if o.legend and #entries > 0 and (o.legend ~= 'auto' or ns > 1) then
      local lx, ly
      if o.legend == 'outside' then
        lx, ly = ax.x + ax.w + 10, ax.y
      else
        lx, ly = legend_place(ax, lw, lh, points, o.legend == 'auto' and 'best' or o.legend)
      end
      draw_legend(c, lx, ly, entries)
      layout.legend = {x = lx, y = ly, w = lw, h = lh}
    end
    return layout
  end
  return spec
end

---------------------------------------------------------------------------------------
-- figures
---------------------------------------------------------------------------------------

local Figure = {}
Figure.__index = Figure
Figure.__name = 'agop.plot.Figure'

local function check_size(where, name, v)
  local w, h
  if type(v) == 'number' then
    w, h = v, v
  elseif type(v) == 'table' then
    w, h = v[1], v[2]
  else
    fail(where, '%s must be a number or {width, height}, got %s', name, type(v))
  end
  for _, x in ipairs({w, h}) do
    if type(x) ~= 'number' or x ~= floor(x) or x < 1 or x > 16384 then
      fail(where, '%s must be whole pixels in 1..16384, got %s x %s', name, tostring(w), tostring(h))
    end
  end
  return floor(w), floor(h)
end

--- plot.figure{rows = 1, cols = 1, title =, panel_size = {w, h} or n, csv = false}
--- A grid of panels; fill them with fig:panel(i, kind, ...) (kind: 'heatmap', 'images',
--- 'lines', 'bars'), then fig:save(path).
function plot.figure(opts)
  local where = 'plot.figure'
  local o = options(opts, {rows = 1, cols = 1, title = NONE, panel_size = NONE, csv = false},
    where)
  for _, k in ipairs({'rows', 'cols'}) do
    local v = o[k]
    if type(v) ~= 'number' or v ~= floor(v) or v < 1 or v > 64 then
      fail(where, '%s must be an integer in 1..64, got %s', k, tostring(v))
    end
  end
  check_type(where, 'title', o.title, 'string')
  local pw, ph
  if o.panel_size ~= nil then pw, ph = check_size(where, 'panel_size', o.panel_size) end
  return setmetatable({rows = floor(o.rows), cols = floor(o.cols), title = o.title, pw = pw,
    ph = ph, csv = o.csv, panels = {}}, Figure)
end

local panel_kinds = {heatmap = true, images = true, lines = true, bars = true}

--- fig:panel(i, 'heatmap', M, opts) / (i, 'images', list, opts) / (i, 'lines', opts) /
--- (i, 'bars', opts): puts a plot into panel i (row-major, 1-based). Returns fig.
function Figure:panel(i, kind, a, b)
  local where = 'Figure:panel'
  local n = self.rows * self.cols
  if type(i) ~= 'number' or i ~= floor(i) or i < 1 or i > n then
    fail(where, 'panel index must be an integer in 1..%d, got %s', n, tostring(i))
  end
  if not panel_kinds[kind] then
    fail(where, "kind must be 'heatmap', 'images', 'lines' or 'bars', got %s", tostring(kind))
  end
  local w = fmt('Figure:panel(%d, %s)', i, kind)
  if kind == 'lines' or kind == 'bars' then
    self.panels[floor(i)] = kinds[kind](a, nil, w)
  else
    self.panels[floor(i)] = kinds[kind](a, b, w)
  end
  return self
end

function Figure:heatmap(i, M, opts) return self:panel(i, 'heatmap', M, opts) end
function Figure:images(i, list, opts) return self:panel(i, 'images', list, opts) end
function Figure:lines(i, opts) return self:panel(i, 'lines', opts) end
function Figure:bars(i, opts) return self:panel(i, 'bars', opts) end

--- Width and height in pixels.
function Figure:size()
  local pw, ph = self.pw, self.ph
  if not pw then
    pw, ph = 0, 0
    for _, p in pairs(self.panels) do
      pw, ph = max(pw, p.default_size[1]), max(ph, p.default_size[2])
    end
    if pw == 0 then pw, ph = 480, 400 end
  end
  local title_h = self.title and (2 * S.fh + 18) or 0
  local w, h = self.cols * pw, self.rows * ph + title_h
  if self.title then w = max(w, text_w(self.title, 2) + 24) end
  return w, h, pw, ph, title_h
end

--- Draws the figure; returns the agop.Canvas and, for each panel, where things went
--- ({axes =, image =, colorbar =, images =, bars =, title =, legend =}: pixel boxes).
function Figure:render()
  local w, h, pw, ph, title_h = self:size()
  if w > 16384 or h > 16384 then
    fail('Figure:render', 'figure of %dx%d pixels is larger than 16384 a side', w, h)
  end
  local c = agop.Canvas(w, h, {bg = S.bg})
  local layouts = {}
  if self.title then layouts.title = draw_title(c, self.title, 0, w, title_h - 6, {x = 0, w = w}) end
  local x0 = floor((w - self.cols * pw) / 2)
  for i = 1, self.rows * self.cols do
    local p = self.panels[i]
    if p then
      local r, q = (i - 1) // self.cols, (i - 1) % self.cols
      layouts[i] = p.draw(c, {x = x0 + q * pw, y = title_h + r * ph, w = pw, h = ph}) or {}
    end
  end
  return c, layouts
end

--- What the figure shows, as plain data (for run.json).
function Figure:describe()
  local w, h = self:size()
  local d = {width = w, height = h, rows = self.rows, cols = self.cols, title = self.title,
    panels = {}}
  for i = 1, self.rows * self.cols do
    if self.panels[i] then
      local p = self.panels[i].describe()
      p.panel = i
      d.panels[#d.panels + 1] = p
    end
  end
  return d
end

--- fig:save(path [, {csv = true}]) -> list of the files written (PNG first).
function Figure:save(path, opts)
  local o = options(opts, {csv = NONE}, 'Figure:save')
  if type(path) ~= 'string' or path == '' then
    fail('Figure:save', 'path must be a non-empty string, got %s', type(path))
  end
  local c <close> = self:render()
  c:save(path)
  local written = {path}
  local csv = o.csv
  if csv == nil then csv = self.csv end
  if csv then
    local base = path:gsub('%.[pP][nN][gG]$', '')
    local idx = {}
    for i = 1, self.rows * self.cols do if self.panels[i] then idx[#idx + 1] = i end end
    for _, i in ipairs(idx) do
      local name = #idx == 1 and (base .. '.csv') or fmt('%s.p%d.csv', base, i)
      local ok, err = pcall(util.write_file, name, self.panels[i].csv())
      if not ok then fail('Figure:save', 'cannot write %s', err) end
      written[#written + 1] = name
    end
  end
  return written
end

function Figure:__tostring()
  local w, h = self:size()
  local n = 0
  for _ in pairs(self.panels) do n = n + 1 end
  return fmt('agop.plot.Figure(%dx%d px, %dx%d panels, %d drawn)', w, h, self.rows, self.cols, n)
end

-- A one-panel figure from a kind; figure options (size, csv) are taken out of opts.
local function single(kind, where, a, opts, takes_data)
  local po, size, csv = {}, nil, nil
  if opts ~= nil and type(opts) ~= 'table' then
    fail(where, 'options must be a table, got %s', type(opts))
  end
  for k, v in pairs(opts or {}) do
    if k == 'size' then size = v elseif k == 'csv' then csv = v else po[k] = v end
  end
  local spec
  if takes_data then spec = kinds[kind](a, po, where) else spec = kinds[kind](po, nil, where) end
  local fig = setmetatable({rows = 1, cols = 1, panels = {spec}, csv = csv}, Figure)
  if size ~= nil then fig.pw, fig.ph = check_size(where, 'size', size) end
  return fig
end

--- plot.heatmap(M, {title, cmap, vmin, vmax, symmetric, colorbar = true, xlabel, ylabel,
--- ticks = true, interp, nan, size = {w, h}, csv}) -> Figure. M: 2-D tensor. The default
--- colormap is viridis, or RdBu_r (blue < 0 < red) when symmetric; symmetric (the default
--- with an RdBu map) centres the range at 0.
function plot.heatmap(M, opts) return single('heatmap', 'plot.heatmap', M, opts, true) end

--- plot.images(list, {cols, titles, normalize = 'minmax'|'none', cmap = 'gray', title,
--- vmin, vmax, symmetric, scale, size, csv}) -> Figure. list: tensors HxW or (1|3)xHxW.
function plot.images(list, opts) return single('images', 'plot.images', list, opts, true) end

--- plot.lines{series = {{x, y, label, band, color, width, dash, marker}}, xlabel, ylabel,
--- title, xlim, ylim, logy, logx, legend = 'best', grid, size, csv} -> Figure. band: {lo =, hi =}
--- or an array of standard deviations (shaded y - std .. y + std).
function plot.lines(opts) return single('lines', 'plot.lines', nil, opts, false) end

--- plot.bars{groups = {...}, series = {{label, values, errors, color}}, ylabel, xlabel,
--- title, ylim, values = false | true | '%.3f', legend = 'auto', grid, size, csv} -> Figure.
--- The 'auto' legend appears with two or more series; errors draws error bars.
function plot.bars(opts) return single('bars', 'plot.bars', nil, opts, false) end

---------------------------------------------------------------------------------------
-- the terminal: plot.show (agop.show)
---------------------------------------------------------------------------------------

local RAMP = ' .:-=+*#%@'

--- The display mode the terminal supports: 'truecolor' (COLORTERM=truecolor/24bit),
--- '256' (TERM mentions 256color), else 'ascii' (also when NO_COLOR is set).
function plot.term_mode(env)
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
function plot.term_width(env)
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
plot.xterm256 = xterm256

local function sgr(mode, fg, r, g, b)
  if mode == 'truecolor' then return fmt('\27[%d;2;%d;%d;%dm', fg and 38 or 48, r, g, b) end
  return fmt('\27[%d;5;%dm', fg and 38 or 48, xterm256(r, g, b))
end

local show_defaults = {width = NONE, height = 40, cmap = 'viridis', mode = 'auto', vmin = NONE,
  vmax = NONE, symmetric = false, string = false, print = true}

--- plot.show(M, {width, height = 40, cmap = 'viridis', mode = 'auto'|'truecolor'|'256'|
--- 'ascii', vmin, vmax, symmetric, string = false, print = true})
--- Draws a matrix (or a 1xN vector, or a (1|3)xHxW image) in the terminal: colour modes
--- use half blocks (U+2580, top pixel in the foreground colour, bottom in the
--- background), ascii mode the shades " .:-=+*#%@" (one character per 1x2 pixels).
--- Large matrices are area-averaged to fit the width (COLUMNS, `tput cols`, or 80) and
--- 2 x height pixel rows; small ones are enlarged to about 48 columns. A header gives
--- the shape and the value range, a footer the colour scale. NaN shows mid gray ('?' in
--- ascii). Returns the text when string = true (and prints it unless print = false).
function plot.show(M, opts)
  local where = 'agop.show'
  local o = options(opts, show_defaults, where)
  local mode = o.mode == 'auto' and plot.term_mode() or o.mode
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
  local width = o.width or (plot.term_width() - 1)
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

return plot
