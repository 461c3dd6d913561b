-- agop.Canvas, agop.read_png, agop.colormap and agop.plot: figures are checked by reading
-- the PNG files back with libpng and looking at the pixels where things should be.
local lu = require('luaunit')
local agop = require('agop')
local plot = require('agop.plot')

local tmp = os.getenv('TMPDIR') or '/tmp'
local seq = 0
local function tmpfile(ext)
  seq = seq + 1
  return string.format('%s/agop_test_plot_%d_%d.%s', tmp, math.random(1, 1e9), seq, ext or 'png')
end

local function hex(r, g, b) return string.format('#%02x%02x%02x', r, g, b) end

-- max channel difference between two colours
local function cdist(a, b)
  return math.max(math.abs(a[1] - b[1]), math.abs(a[2] - b[2]), math.abs(a[3] - b[3]))
end

local function cmap(name, t) return {agop.colormap(name, t)} end

-- Saves fig, reads it back; returns w, h, px(x, y) -> {r, g, b}, layouts, path.
local function saved(fig)
  local path = tmpfile()
  fig:save(path)
  local w, h, ch, px = agop.read_png(path)
  lu.assertEquals(ch, 3)
  local _, layouts = fig:render()
  os.remove(path)
  return w, h, function(x, y) return {px(math.floor(x), math.floor(y))} end, layouts
end

-- number of pixels in a box that differ from white
local function ink(px, box)
  local n = 0
  for y = box.y, box.y + box.h - 1 do
    for x = box.x, box.x + box.w - 1 do
      local p = px(x, y)
      if p[1] ~= 255 or p[2] ~= 255 or p[3] ~= 255 then n = n + 1 end
    end
  end
  return n
end

---------------------------------------------------------------------------------------

TestCanvas = {}

function TestCanvas:test_draws_and_reads_back_through_png()
  local c = agop.Canvas(40, 30, {bg = '#102030'})
  lu.assertEquals({c:size()}, {40, 30})
  lu.assertEquals({c:get(0, 0)}, {16, 32, 48})
  c:rect(10, 5, 4, 3, '#ff0000')
  c:line(0, 20.5, 40, 20.5, {0, 255, 0}, 1)
  local path = tmpfile()
  c:save(path)
  local w, h, ch, px, t = agop.read_png(path)
  os.remove(path)
  lu.assertEquals({w, h, ch}, {40, 30, 3})
  lu.assertEquals({px(10, 5)}, {255, 0, 0})
  lu.assertEquals({px(13, 7)}, {255, 0, 0})
  lu.assertEquals({px(14, 7)}, {16, 32, 48})
  lu.assertEquals({px(25, 20)}, {0, 255, 0})
  lu.assertEquals({px(25, 19)}, {16, 32, 48})
  lu.assertEquals(t:size(), {30, 40, 3})
  lu.assertEquals(t:get(6, 11, 1), 255) -- tensor is 1-based (row, col, channel)
end

function TestCanvas:test_colors_in_every_form()
  local c = agop.Canvas(5, 1)
  c:rect(0, 0, 1, 1, '#00ff00')
  c:rect(1, 0, 1, 1, 'C3')
  c:rect(2, 0, 1, 1, {1, 2, 3})
  c:rect(3, 0, 1, 1, '#0000ff80') -- half-transparent blue over white
  c:rect(4, 0, 1, 1, 'none')
  lu.assertEquals({c:get(0, 0)}, {0, 255, 0})
  lu.assertEquals({c:get(1, 0)}, {0xd6, 0x27, 0x28})
  lu.assertEquals({c:get(2, 0)}, {1, 2, 3})
  local r, _, b = c:get(3, 0)
  lu.assertTrue(math.abs(r - 127) <= 1 and b == 255)
  lu.assertEquals({c:get(4, 0)}, {255, 255, 255})
end

function TestCanvas:test_bad_arguments_are_errors_not_crashes()
  lu.assertErrorMsgContains('width must be an integer in [1, 16384]', agop.Canvas, 0, 10)
  lu.assertErrorMsgContains('height', agop.Canvas, 10, 16385)
  lu.assertErrorMsgContains("unknown option 'bgg'", agop.Canvas, 10, 10, {bgg = '#fff'})
  local c = agop.Canvas(10, 10)
  lu.assertErrorMsgContains('is not a colour', c.rect, c, 0, 0, 1, 1, '#12345')
  lu.assertErrorMsgContains('0..255', c.rect, c, 0, 0, 1, 1, {0, 0, 256})
  lu.assertErrorMsgContains('must be finite', c.line, c, 0, 0 / 0, 1, 1)
  lu.assertErrorMsgContains('must be finite', c.marker, c, math.huge, 0)
  lu.assertErrorMsgContains('within', c.rect, c, 1e12, 0, 1, 1)
  lu.assertErrorMsgContains('width must be in', c.line, c, 0, 0, 1, 1, 'black', 0)
  lu.assertErrorMsgContains('xs has 2 points but ys has 3', c.polyline, c, {1, 2}, {1, 2, 3})
  lu.assertErrorMsgContains('xs[2] must be a number', c.polyline, c, {1, 'a'}, {1, 2})
  lu.assertErrorMsgContains('not a finite coordinate', c.polyline, c, {1, math.huge}, {1, 2})
  lu.assertErrorMsgContains('at least 3 points', c.polygon, c, {1, 2}, {1, 2})
  lu.assertErrorMsgContains("unknown marker 'star'", c.marker, c, 1, 1, 'star')
  lu.assertErrorMsgContains('rotate must be 0 or 90', c.text, c, 0, 0, 'x', {rotate = 45})
  lu.assertErrorMsgContains("unknown colormap 'jet'", c.blit, c, agop.zeros(2, 2), 0, 0, 2, 2,
    {cmap = 'jet'})
  lu.assertErrorMsgContains('empty', c.blit, c, agop.zeros(0, 3), 0, 0, 2, 2)
  lu.assertErrorMsgContains('expected a matrix', c.blit, c, agop.zeros(2, 2, 2, 2), 0, 0, 2, 2)
  lu.assertErrorMsgContains('vmin 2.0 is larger than vmax 1.0', c.blit, c, agop.zeros(2, 2), 0, 0,
    2, 2, {vmin = 2, vmax = 1})
  lu.assertErrorMsgContains("interp must be", c.blit, c, agop.zeros(2, 2), 0, 0, 2, 2,
    {interp = 'cubic'})
  lu.assertErrorMsgContains('No such file', c.save, c, '/nonexistent-dir/x.png')
  lu.assertErrorMsgContains('cannot open', agop.read_png, '/nonexistent-dir/x.png')
  lu.assertErrorMsgContains("unknown colormap", agop.colormap, 'nope', 0.5)
  -- NaN coordinates in a polyline are gaps, not errors
  c:polyline({1, 0 / 0, 3}, {1, 2, 3})
  c:close()
  lu.assertErrorMsgContains('closed', c.size, c)
  lu.assertEquals(tostring(c), 'agop.Canvas(closed)')
  c:close() -- twice is fine
end

function TestCanvas:test_close_releases_pixels_through_to_be_closed_variables()
  local ref
  do
    local c <close> = agop.Canvas(64, 64)
    ref = c
    c:rect(0, 0, 8, 8, 'black')
  end
  lu.assertErrorMsgContains('closed', ref.get, ref, 0, 0)
end

function TestCanvas:test_text_lands_in_its_box_and_measures()
  lu.assertEquals({agop.text_size('abc')}, {18, 13})
  lu.assertEquals({agop.text_size('abc', {scale = 2})}, {36, 26})
  lu.assertEquals({agop.text_size('ab\ncde', {rotate = 90})}, {26, 18})
  local c = agop.Canvas(100, 60)
  local x, y, w, h = c:text(50, 30, 'Mid', {align = 'center', valign = 'middle'})
  lu.assertEquals({x, y, w, h}, {41, 24, 18, 13}) -- 50 - 9, 30 - 6.5 rounded
  local n, outside = 0, 0
  for py = 0, 59 do
    for px = 0, 99 do
      if c:get(px, py) ~= 255 then
        if px >= x and px < x + w and py >= y and py < y + h then n = n + 1 else outside = outside + 1 end
      end
    end
  end
  lu.assertTrue(n > 20)
  lu.assertEquals(outside, 0)
end

function TestCanvas:test_colormap_endpoints_and_nan()
  lu.assertEquals(cmap('viridis', 0), {68, 1, 84})
  lu.assertEquals(cmap('viridis', 1), {253, 231, 37})
  lu.assertEquals(cmap('magma', 0), {0, 0, 4})
  lu.assertEquals(cmap('magma', 1), {252, 253, 191})
  lu.assertEquals(cmap('gray', 1), {255, 255, 255})
  lu.assertEquals(cmap('RdBu', 0.5), {247, 247, 247})
  lu.assertEquals(cmap('RdBu_r', 1), {103, 0, 31})
  lu.assertEquals(cmap('viridis', 0 / 0), {128, 128, 128})
end

function TestCanvas:test_blit_range_and_symmetric_and_nan()
  local c = agop.Canvas(4, 1)
  local M = agop.tensor{{-1, 0, 3, 0 / 0}}
  local lo, hi = c:blit(M, 0, 0, 4, 1, {cmap = 'gray'})
  lu.assertEquals({lo, hi}, {-1, 3})
  lu.assertEquals({c:get(0, 0)}, {0, 0, 0})
  lu.assertEquals({c:get(2, 0)}, {255, 255, 255})
  lu.assertEquals({c:get(3, 0)}, {128, 128, 128})
  lo, hi = c:blit(M, 0, 0, 4, 1, {cmap = 'RdBu', symmetric = true, nan = '#ff00ff'})
  lu.assertEquals({lo, hi}, {-3, 3})
  lu.assertEquals({c:get(1, 0)}, {247, 247, 247}) -- 0 is the centre
  lu.assertEquals({c:get(3, 0)}, {255, 0, 255})
  -- all NaN: the range falls back to [0, 1] and every pixel is the NaN colour
  lo, hi = c:blit(agop.full(0 / 0, 1, 4), 0, 0, 4, 1)
  lu.assertEquals({lo, hi}, {0, 1})
  lu.assertEquals({c:get(2, 0)}, {128, 128, 128})
  -- a transposed (non-contiguous) view draws as its logical layout
  local T = agop.tensor{{0, 1}, {0, 1}}:t() -- rows {0,0} and {1,1}
  c = agop.Canvas(2, 2)
  c:blit(T, 0, 0, 2, 2, {cmap = 'gray'})
  lu.assertEquals({c:get(1, 0)}, {0, 0, 0})
  lu.assertEquals({c:get(0, 1)}, {255, 255, 255})
  lu.assertEquals({agop.finite_range(agop.tensor{0 / 0, 2, -1, math.huge})}, {-1, 2, 2, 1, 1})
end

---------------------------------------------------------------------------------------

TestPlot = {}

function TestPlot:test_heatmap_cells_and_colorbar_ends()
  local M = agop.tensor{{0, 1}, {2, 3}}
  local fig = plot.heatmap(M, {title = 'T'})
  local w, h, px, L = saved(fig)
  local fw, fh = fig:size()
  lu.assertEquals({w, h}, {fw, fh})
  local im, cb = L[1].image, L[1].colorbar
  -- row 1 at the top: (1, 1) = 0 -> viridis(0); (2, 2) = 3 -> viridis(1)
  lu.assertTrue(cdist(px(im.x + 2, im.y + 2), cmap('viridis', 0)) <= 1)
  lu.assertTrue(cdist(px(im.x + im.w - 3, im.y + im.h - 3), cmap('viridis', 1)) <= 1)
  lu.assertTrue(cdist(px(im.x + im.w - 3, im.y + 2), cmap('viridis', 1 / 3)) <= 2)
  -- colorbar: vmax at the top, vmin at the bottom
  lu.assertTrue(cdist(px(cb.x + cb.w // 2, cb.y), cmap('viridis', 1)) <= 2)
  lu.assertTrue(cdist(px(cb.x + cb.w // 2, cb.y + cb.h - 1), cmap('viridis', 0)) <= 2)
  -- the title is drawn: ink inside its box
  lu.assertTrue(ink(px, L[1].title) > 30)
  -- colorbar numbers: ink right of the colorbar
  lu.assertTrue(ink(px, {x = cb.x + cb.w + 8, y = cb.y, w = 30, h = cb.h}) > 20)
end

function TestPlot:test_heatmap_symmetric_rdbu_is_centred_at_zero()
  local M = agop.tensor{{-1, 0.25}, {0, 2}}
  local _, _, px, L = saved(plot.heatmap(M, {symmetric = true}))
  local im = L[1].image
  lu.assertEquals({L[1].vmin, L[1].vmax, L[1].cmap}, {-2, 2, 'RdBu_r'})
  lu.assertTrue(cdist(px(im.x + 2, im.y + im.h - 3), cmap('RdBu_r', 0.5)) <= 1) -- the 0 cell
  lu.assertTrue(cdist(px(im.x + im.w - 3, im.y + im.h - 3), cmap('RdBu_r', 1)) <= 1)
end

function TestPlot:test_heatmap_nan_and_all_nan_render_gray()
  local M = agop.tensor{{1, 0 / 0}, {3, 4}}
  local _, _, px, L = saved(plot.heatmap(M))
  local im = L[1].image
  lu.assertEquals(px(im.x + im.w - 3, im.y + 2), {128, 128, 128})
  local A = agop.full(0 / 0, 3, 3)
  _, _, px, L = saved(plot.heatmap(A))
  im = L[1].image
  lu.assertEquals(px(im.x + im.w // 2, im.y + im.h // 2), {128, 128, 128})
  lu.assertEquals({L[1].vmin, L[1].vmax}, {0, 1})
end

function TestPlot:test_large_matrix_is_area_averaged()
  -- a 400x400 checkerboard of 0/1 drawn small averages to the middle colour
  local flat = {}
  for i = 0, 399 do for j = 0, 399 do flat[#flat + 1] = (i + j) % 2 end end
  local M = agop.from_table(flat, 400, 400)
  local _, _, px, L = saved(plot.heatmap(M, {cmap = 'gray', size = {300, 260}}))
  local im = L[1].image
  lu.assertTrue(im.w < 400)
  local p = px(im.x + im.w // 2, im.y + im.h // 2)
  lu.assertTrue(math.abs(p[1] - 128) <= 3, 'got ' .. p[1])
end

function TestPlot:test_heatmap_errors()
  lu.assertErrorMsgContains('empty', plot.heatmap, agop.zeros(0, 4))
  lu.assertErrorMsgContains('2-D tensor', plot.heatmap, agop.zeros(2, 2, 2))
  lu.assertErrorMsgContains('2-D tensor', plot.heatmap, {{1, 2}})
  lu.assertErrorMsgContains("unknown option 'cmapp' (did you mean 'cmap'?)", plot.heatmap,
    agop.zeros(2, 2), {cmapp = 'gray'})
  lu.assertErrorMsgContains('vmin 2 is larger than vmax 1', plot.heatmap, agop.zeros(2, 2),
    {vmin = 2, vmax = 1})
  lu.assertErrorMsgContains('size must be whole pixels', plot.heatmap, agop.zeros(2, 2),
    {size = {0, 100}})
end

function TestPlot:test_lines_pixels_where_the_data_is()
  local fig = plot.lines{series = {{x = {0, 10}, y = {1, 1}, color = '#ff0000', width = 1},
    {x = {0, 10}, y = {0, 2}, color = '#0000ff', width = 1}}, title = 'lines'}
  local _, _, px, L = saved(fig)
  local ax, xl, yl = L[1].axes, L[1].xlim, L[1].ylim
  local function X(v) return ax.x + (v - xl[1]) / (xl[2] - xl[1]) * ax.w end
  local function Y(v) return ax.y + ax.h - (v - yl[1]) / (yl[2] - yl[1]) * ax.h end
  -- the red line y = 1 at x = 2 (left of the crossing): one pixel's worth of red ink in
  -- that column, all within a pixel of y = 1
  local cov = 0
  for yy = math.floor(Y(1)) - 3, math.floor(Y(1)) + 3 do
    local q = px(X(2), yy)
    lu.assertEquals(q[1], 255)
    if math.abs(yy + 0.5 - Y(1)) > 1.5 then lu.assertEquals(q[2], 255) end
    cov = cov + (255 - q[2]) / 255
  end
  lu.assertAlmostEquals(cov, 1, 0.1)
  -- the blue one through (7.5, 1.5)
  local p = px(X(7.5), Y(1.5))
  lu.assertTrue(p[3] > 200 and p[1] < 120, 'blue line pixel')
  lu.assertEquals(px(X(2), Y(1.8)), {255, 255, 255}) -- empty space above
  lu.assertTrue(ink(px, L[1].title) > 20)
end

function TestPlot:test_lines_band_legend_logy_and_nan_gaps()
  local y, sd = {}, {}
  for i = 1, 20 do y[i], sd[i] = i, 0.5 end
  y[10] = 0 / 0
  local fig = plot.lines{series = {{y = y, band = sd, label = 'mean'}, {y = agop.arange(1, 21),
    label = 'other', dash = true}}, logy = true, xlabel = 'x', ylabel = 'y'}
  local _, _, px, L = saved(fig)
  lu.assertTrue(L[1].logy)
  lu.assertNotNil(L[1].legend)
  lu.assertTrue(ink(px, L[1].legend) > 50)
  lu.assertErrorMsgContains('series is empty', plot.lines, {series = {}})
  lu.assertErrorMsgContains('x has 2 values but y has 3', plot.lines,
    {series = {{x = {1, 2}, y = {1, 2, 3}}}})
  lu.assertErrorMsgContains("unknown field 'lable' (did you mean 'label'?)", plot.lines,
    {series = {{y = {1}, lable = 'a'}}})
  lu.assertErrorMsgContains('ylim must be positive with logy', plot.lines,
    {series = {{y = {1}}}, logy = true, ylim = {0, 1}})
  -- empty and all-NaN series still draw empty axes
  local w = saved(plot.lines{series = {{y = {}}, {y = {0 / 0, 0 / 0}}}})
  lu.assertTrue(w > 0)
end

function TestPlot:test_bars_heights_and_csv()
  local fig = plot.bars{groups = {'a', 'b', 'c'}, series = {{label = 's1', values = {1, 2, -1},
    color = '#00aa00'}}, values = true, ylim = {-2, 3}}
  local path = tmpfile()
  local files = fig:save(path, {csv = true})
  lu.assertEquals(#files, 2)
  lu.assertEquals(files[2], path:gsub('%.png$', '.csv'))
  local f = assert(io.open(files[2]))
  local text = f:read('a')
  f:close()
  lu.assertEquals(text, 'group,series,value,error\na,s1,1,\nb,s1,2,\nc,s1,-1,\n')
  local _, _, _, px = agop.read_png(path)
  local _, L = fig:render()
  os.remove(path)
  os.remove(files[2])
  local ax, lim = L[1].axes, L[1].ylim
  local function Y(v) return ax.y + ax.h - (v - lim[1]) / (lim[2] - lim[1]) * ax.h end
  local b2 = L[1].bars[2]
  lu.assertEquals({px(b2.x + b2.w // 2, math.floor(Y(1)))}, {0, 170, 0})
  lu.assertEquals({px(b2.x + b2.w // 2, math.floor(Y(2.3)))}, {255, 255, 255})
  local b3 = L[1].bars[3]
  lu.assertEquals({px(b3.x + b3.w // 2, math.floor(Y(-0.5)))}, {0, 170, 0}) -- below zero
  lu.assertErrorMsgContains('has 2 values for 3 groups', plot.bars,
    {groups = {'a', 'b', 'c'}, series = {{values = {1, 2}}}})
  lu.assertErrorMsgContains('groups must be a non-empty list', plot.bars,
    {groups = {}, series = {{values = {}}}})
end

function TestPlot:test_images_minmax_normalization_and_titles()
  local a = agop.tensor{{0, 10}, {20, 30}}
  local b = agop.tensor{{-1, 1}}
  local fig = plot.images({a, b}, {titles = {'A', 'B'}, title = 'imgs'})
  local _, _, px, L = saved(fig)
  local ia, ib = L[1].images[1], L[1].images[2]
  lu.assertEquals(px(ia.x + 1, ia.y + 1), {0, 0, 0})          -- min of a: black
  lu.assertEquals(px(ia.x + ia.w - 2, ia.y + ia.h - 2), {255, 255, 255})
  lu.assertEquals(px(ib.x + ib.w - 2, ib.y + 1), {255, 255, 255}) -- its own range
  lu.assertTrue(ink(px, {x = ia.x, y = ia.y - 17, w = ia.w, h = 14}) > 5) -- title 'A'
  -- normalize = 'none': one range for all, so b's max (1) is dark on a's scale
  _, _, px, L = saved(plot.images({a, b}, {normalize = 'none'}))
  ib = L[1].images[2]
  local p = px(ib.x + ib.w - 2, ib.y + 1)
  lu.assertTrue(p[1] < 40, 'got ' .. p[1])
  lu.assertErrorMsgContains('the list of images is empty', plot.images, {})
  lu.assertErrorMsgContains('image 2 is empty', plot.images, {a, agop.zeros(0, 2)})
  lu.assertErrorMsgContains('wrap a single tensor', plot.images, a)
end

function TestPlot:test_figure_panels_and_errors()
  local fig = plot.figure{rows = 1, cols = 2, title = 'two', panel_size = {300, 240}}
  fig:panel(1, 'heatmap', agop.eye and agop.eye(3) or agop.tensor{{1, 0}, {0, 1}})
  fig:panel(2, 'lines', {series = {{y = {1, 2, 3}}}})
  local w, h, px, L = saved(fig)
  lu.assertEquals(w, 600)
  lu.assertEquals(h, 240 + 2 * 13 + 18)
  lu.assertTrue(ink(px, L.title) > 30)
  lu.assertNotNil(L[1].image)
  lu.assertNotNil(L[2].axes)
  lu.assertTrue(L[2].axes.x >= 300)
  local d = fig:describe()
  lu.assertEquals(#d.panels, 2)
  lu.assertEquals(d.panels[1].kind, 'heatmap')
  -- csv for several panels: one file per panel
  local path = tmpfile()
  local files = fig:save(path, {csv = true})
  lu.assertEquals(#files, 3)
  lu.assertStrContains(files[3], '.p2.csv')
  for _, f in ipairs(files) do os.remove(f) end
  lu.assertErrorMsgContains('rows must be an integer in 1..64', plot.figure, {rows = 0})
  lu.assertErrorMsgContains('panel_size must be whole pixels', plot.figure, {panel_size = {0, 0}})
  lu.assertErrorMsgContains('panel index must be an integer in 1..2', fig.panel, fig, 3, 'lines', {})
  lu.assertErrorMsgContains("kind must be", fig.panel, fig, 1, 'pie', {})
  lu.assertErrorMsgContains('No such file', fig.save, fig, '/nonexistent-dir/x.png')
  -- an empty figure is a blank, valid image
  local ew, eh = saved(plot.figure{rows = 1, cols = 1})
  lu.assertTrue(ew > 0 and eh > 0)
end

function TestPlot:test_ticks_are_round_numbers()
  local t, step = plot.nice_ticks(0, 1, 5)
  lu.assertEquals(t, {0, 0.2, 0.4, 0.6, 0.8, 1})
  lu.assertAlmostEquals(step, 0.2, 1e-12)
  lu.assertEquals(plot.tick_labels(t, step), {'0.0', '0.2', '0.4', '0.6', '0.8', '1.0'})
  t, step = plot.nice_ticks(-37, 412, 5)
  lu.assertEquals(t, {0, 100, 200, 300, 400})
  lu.assertEquals(plot.tick_labels({0, 2e5, 4e5}, 2e5), {'0', '2e5', '4e5'})
  lu.assertEquals(plot.tick_labels({-0.0001, 0, 0.0001}, 1e-4), {'-1e-4', '0', '1e-4'})
end

---------------------------------------------------------------------------------------

TestShow = {}

local function lines_of(s)
  local t = {}
  for l in s:gmatch('[^\n]*\n') do t[#t + 1] = l:sub(1, -2) end
  return t
end

function TestShow:test_ascii_mode_has_no_escapes_and_fits()
  local M = agop.randn(agop.Generator(3), 300, 500)
  local s = plot.show(M, {mode = 'ascii', width = 60, height = 10, string = true, print = false})
  lu.assertNil(s:find('\27', 1, true))
  local L = lines_of(s)
  lu.assertStrContains(L[1], '300x500 tensor')
  lu.assertStrContains(L[1], 'min ')
  lu.assertEquals(#L, 1 + 10 + 1) -- header, 10 picture lines, scale
  for i = 2, 11 do lu.assertTrue(#L[i] <= 60) end
  lu.assertStrContains(L[12], " .:-=+*#%@")
end

function TestShow:test_ascii_ramp_runs_from_low_to_high_and_marks_nan()
  -- one character per 1x2 pixels: rows 1-2 make line 1, rows 3-4 line 2
  local M = agop.tensor{{0, 1}, {0, 1}, {0 / 0, 0.5}, {0 / 0, 0.5}}
  local s = plot.show(M, {mode = 'ascii', width = 2, string = true, print = false})
  local L = lines_of(s)
  lu.assertStrContains(L[1], '2 NaN')
  lu.assertEquals(L[2], ' @')   -- 0 -> ' ', 1 -> '@'
  lu.assertEquals(L[3], '?+')   -- NaN -> '?', 0.5 -> the middle of the ramp
end

function TestShow:test_color_modes_use_half_blocks_and_escapes()
  local M = agop.arange(0, 12):reshape(3, 4)
  local t = plot.show(M, {mode = 'truecolor', width = 4, string = true, print = false})
  lu.assertStrContains(t, '\27[38;2;68;1;84m') -- viridis(0) as a foreground colour
  lu.assertStrContains(t, '\u{2580}')
  local L = lines_of(t)
  lu.assertEquals(#L, 1 + 2 + 1) -- 3 pixel rows -> 2 lines of half blocks
  local _, nblocks = L[2]:gsub('\u{2580}', '')
  lu.assertEquals(nblocks, 4)
  local e = plot.show(M, {mode = '256', width = 4, string = true, print = false})
  lu.assertStrContains(e, '\27[38;5;')
  lu.assertNil(e:find('38;2;', 1, true))
  lu.assertEquals(plot.xterm256(0, 0, 0), 16)
  lu.assertEquals(plot.xterm256(255, 255, 255), 231)
  lu.assertEquals(plot.xterm256(128, 128, 128), 244)
end

function TestShow:test_mode_and_width_come_from_the_environment()
  local function env(t) return function(k) return t[k] end end
  lu.assertEquals(plot.term_mode(env{COLORTERM = 'truecolor', TERM = 'xterm'}), 'truecolor')
  lu.assertEquals(plot.term_mode(env{TERM = 'xterm-256color'}), '256')
  lu.assertEquals(plot.term_mode(env{TERM = 'dumb'}), 'ascii')
  lu.assertEquals(plot.term_mode(env{}), 'ascii')
  lu.assertEquals(plot.term_mode(env{COLORTERM = '24bit', NO_COLOR = '1'}), 'ascii')
  lu.assertEquals(plot.term_width(env{COLUMNS = '123'}), 123)
  lu.assertEquals(plot.term_width(env{}), 80)
end

function TestShow:test_small_matrices_grow_vectors_and_empty_tensors()
  local s = plot.show(agop.tensor{{1, 2}, {3, 4}}, {mode = 'ascii', string = true, print = false})
  local L = lines_of(s)
  lu.assertTrue(#L[2] >= 20) -- enlarged from 2 columns
  s = plot.show(agop.arange(1, 6), {mode = 'ascii', string = true, print = false})
  lu.assertStrContains(s, '1x5 tensor')
  s = plot.show(agop.zeros(0, 3), {mode = 'ascii', string = true, print = false})
  lu.assertStrContains(s, '0x3 tensor (empty)')
  lu.assertErrorMsgContains('expected a matrix', plot.show, agop.zeros(2, 2, 2, 2),
    {print = false})
  lu.assertErrorMsgContains("mode must be", plot.show, agop.zeros(2, 2), {mode = 'vga'})
  lu.assertNil(plot.show(agop.zeros(2, 2), {mode = 'ascii', print = false}))
  lu.assertStrContains(agop.show(agop.ones(2, 2), {mode = 'ascii', string = true, print = false}),
    '2x2 tensor')
end

---------------------------------------------------------------------------------------

TestFiguresDemo = {}

function TestFiguresDemo:test_demo_script_writes_every_figure_and_run_json()
  local dir = tmpfile('d')
  local saved_arg, saved_print = arg, print
  arg = {[0] = 'scripts/figures_demo.lua', '--out', dir}
  print = function() end
  local ok, err = pcall(dofile, 'scripts/figures_demo.lua')
  arg, print = saved_arg, saved_print
  lu.assertTrue(ok, tostring(err))
  local run = require('agop.json').read(dir .. '/run.json')
  lu.assertEquals(#run.figures, 10)
  for _, f in ipairs(run.figures) do
    local w, h = agop.read_png(dir .. '/' .. f.file)
    lu.assertEquals({w, h}, {f.width, f.height})
    os.remove(dir .. '/' .. f.file)
    for _, c in ipairs(f.csv or {}) do os.remove(dir .. '/' .. c) end
  end
  os.remove(dir .. '/run.json')
  os.remove(dir)
end
