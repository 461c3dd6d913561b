-- agop.plot.images: a grid of small matrices: filters, eigenvectors, feature maps
-- (plot.images).
-- Part of agop.plot (lua/agop/plot.lua), which holds the Figure and the public API.
local agop = require('agop')
local check = require('agop.check')
local A = require('agop.plot.axes')

local fmt, floor, ceil, abs, max, min, huge =
  string.format, math.floor, math.ceil, math.abs, math.max, math.min, math.huge
local NONE, S, check_type, csv_num, draw_title, fail, options, text, text_w =
  A.NONE, A.S, A.check_type, A.csv_num, A.draw_title, A.fail, A.options, A.text, A.text_w

---------------------------------------------------------------------------------------
-- images (a grid of small matrices: filters, eigenvectors, feature maps)
---------------------------------------------------------------------------------------

local images_defaults = {
  cols = NONE, titles = NONE, normalize = 'minmax', cmap = 'gray', title = NONE,
  vmin = NONE, vmax = NONE, symmetric = false, scale = NONE, interp = NONE,
}

local function images(list, opts, where)
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

return images
