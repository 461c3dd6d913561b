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
--
-- Files: this one holds the Figure (panels, save, describe) and the public functions;
-- lua/agop/plot/ holds one file per kind of panel (heatmap, images, lines, bars), the
-- shared axes, ticks, legends and checks (axes) and the terminal renderer (term). A new
-- kind of panel: a file returning fn(data, opts, where) -> spec, added to `kinds` below.
local agop = require('agop')
local util = require('agop.util')

local plot = {}

local fmt, floor, max = string.format, math.floor, math.max

local A = require('agop.plot.axes')
local term = require('agop.plot.term')

-- the kinds of panel, one file each
local kinds = {heatmap = require('agop.plot.heatmap'), images = require('agop.plot.images'),
               lines = require('agop.plot.lines'), bars = require('agop.plot.bars')}

plot.style = A.S
plot.nice_ticks, plot.tick_labels, plot.short = A.nice_ticks, A.tick_labels, A.short
plot.term_mode, plot.term_width, plot.xterm256 = term.term_mode, term.term_width, term.xterm256
plot.show = term.show

local NONE, S, check_type, draw_title, fail, options, text_w =
  A.NONE, A.S, A.check_type, A.draw_title, A.fail, A.options, A.text_w

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

return plot
