-- agop.plot.lines: curves with bands, markers, log axes and a legend (plot.lines).
-- Part of agop.plot (lua/agop/plot.lua), which holds the Figure and the public API.
local agop = require('agop')
local A = require('agop.plot.axes')

local fmt, floor, max = string.format, math.floor, math.max
local log10 = function(x) return math.log(x, 10) end
local NONE, S, axes_box, check_lim, check_series_fields, check_type, color_of, csv_escape,
  csv_num, dashify, data_range, draw_axes, draw_axis_labels, put_legend, fail, isfinite,
  legend_size, linear_ticks, log_ticks, options, pad_range, text, text_w,
  to_array, with_alpha =
  A.NONE, A.S, A.axes_box, A.check_lim, A.check_series_fields, A.check_type, A.color_of,
  A.csv_escape, A.csv_num, A.dashify, A.data_range, A.draw_axes, A.draw_axis_labels,
  A.put_legend, A.fail, A.isfinite, A.legend_size, A.linear_ticks,
  A.log_ticks, A.options, A.pad_range, A.text, A.text_w, A.to_array, A.with_alpha

---------------------------------------------------------------------------------------
-- lines
---------------------------------------------------------------------------------------

local lines_defaults = {
  series = NONE, xlabel = NONE, ylabel = NONE, title = NONE, xlim = NONE, ylim = NONE,
  logy = false, logx = false, legend = 'best', grid = false,
}
local series_keys = {x = true, y = true, label = true, band = true, color = true, width = true,
  dash = true, marker = true, marker_size = true}

local function lines(opts, _, where)
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
      layout.legend = put_legend(c, ax, lw, lh, points, o.legend, entries)
    end
    return layout
  end
  return spec
end

---------------------------------------------------------------------------------------

return lines
