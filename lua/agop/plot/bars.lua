-- agop.plot.bars: grouped bars with error bars and values (plot.bars).
-- Part of agop.plot (lua/agop/plot.lua), which holds the Figure and the public API.
local A = require('agop.plot.axes')

local fmt, floor, abs, max, min = string.format, math.floor, math.abs, math.max, math.min
local NONE, S, axes_box, check_lim, check_series_fields, check_type, color_of, csv_escape,
  csv_num, draw_axes, draw_axis_labels, put_legend, fail, isfinite, legend_size,
  linear_ticks, options, pad_range, text, text_w, to_array =
  A.NONE, A.S, A.axes_box, A.check_lim, A.check_series_fields, A.check_type, A.color_of,
  A.csv_escape, A.csv_num, A.draw_axes, A.draw_axis_labels, A.put_legend, A.fail, A.isfinite,
  A.legend_size, A.linear_ticks, A.options, A.pad_range, A.text, A.text_w,
  A.to_array

---------------------------------------------------------------------------------------
-- bars
---------------------------------------------------------------------------------------

local bars_defaults = {
  groups = NONE, series = NONE, ylabel = NONE, xlabel = NONE, title = NONE, ylim = NONE,
  values = false, legend = 'auto', grid = false,
}
local bar_series_keys = {label = true, values = true, color = true, errors = true}

local function bars(opts, _, where)
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
      local where = o.legend == 'auto' and 'best' or o.legend
      layout.legend = put_legend(c, ax, lw, lh, points, where, entries)
    end
    return layout
  end
  return spec
end

---------------------------------------------------------------------------------------

return bars
