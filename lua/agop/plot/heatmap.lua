-- agop.plot.heatmap: a matrix as coloured cells with a colorbar (plot.heatmap).
-- Part of agop.plot (lua/agop/plot.lua), which holds the Figure and the public API.
local agop = require('agop')
local check = require('agop.check')
local A = require('agop.plot.axes')

local floor, abs, max, min = math.floor, math.abs, math.max, math.min
local NONE, S, check_type, csv_num, draw_axes, draw_title, fail, isfinite, nice_step,
  nice_ticks, options, short, text, text_w, tick_labels =
  A.NONE, A.S, A.check_type, A.csv_num, A.draw_axes, A.draw_title, A.fail, A.isfinite,
  A.nice_step, A.nice_ticks, A.options, A.short, A.text, A.text_w, A.tick_labels

---------------------------------------------------------------------------------------
-- heatmap
---------------------------------------------------------------------------------------

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

local function heatmap(M, opts, where)
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

return heatmap
