-- agop.ansatz: the measurements behind a rigorous Table 1 - the null ρ(N, N^½), the
-- AGOP as a running sum over image blocks (ρ against the number of images n, and a
-- bootstrap over images), and the dynamics of the ansatz during training.
--
--   ansatz.nfm_half(conv)                      -- N^½ = (W^T W)^½ (d x d), through the
--                                              -- rank-c_out factorization (S = I)
--   ansatz.compare(conv, S)                    -- {rho, rho_off}: ρ(N, (W^T S W)^½), in
--                                              -- c_out x c_out space (agop.ansatz_corr)
--   ansatz.null(conv)                          -- ρ(N, N^½) and its off-diagonal version
--   ansatz.sweep(model, images, opts)          -- one pass: factors S/n at every n of
--                                              -- opts.ns, and block sums for the bootstrap
--   ansatz.bootstrap(model, blocks, opts)      -- BCa CIs of ρ(CNFM, AGOP^½)
--   ansatz.track_steps(total, K)               -- K evenly spaced steps 0..total
--   ansatz.tracker(model, init_model, images, opts) -- :record(step, loss) -> dynamics rows
--
-- Why the null: N = W^T W and G = W^T S W / n are quadratic forms in the same W, so when
-- S is a multiple of the identity, G^½ = c N^½ and ρ(N, G^½) = ρ(N, N^½) with no learning
-- at all. A trained ρ(CNFM, AGOP^½) means something only beside that number.
local agop = require('agop')
local util = require('agop.util')
local features = require('agop.features')
local stats = require('agop.stats')

local ansatz = {}
local fmt = string.format

local function eye(n)
  local t = agop.zeros(n, n)
  for i = 1, n do t:set(i, i, 1) end
  return t
end

--- N^½ of a conv layer: (W^T I W)^½ by the same arithmetic as AGOP^½.
function ansatz.nfm_half(conv)
  local w = agop.is_tensor(conv) and conv or conv.weight
  return features.agop_expand(eye(w:size(1)), conv, 0.5)
end

--- ρ(CNFM, AGOP^½) and its off-diagonal version for the AGOP factor S (S_l / n) of
--- `conv`: {rho =, rho_off =}. Computed in c_out x c_out space without forming a d x d
--- matrix (engine/ansatz.c; it agrees with features.corr(N, features.agop_expand(S, conv,
--- 0.5)) to rounding), so it is cheap enough for hundreds of bootstrap replicates.
function ansatz.compare(conv, s)
  local rho, off = agop.ansatz_corr(s, agop.is_tensor(conv) and conv or conv.weight, 0.5)
  return {rho = rho, rho_off = off}
end

--- The null ρ(N, N^½) (S = I) of a conv layer, and its off-diagonal version.
function ansatz.null(conv)
  local w = agop.is_tensor(conv) and conv or conv.weight
  return agop.ansatz_corr(eye(w:size(1)), w, 0.5)
end

-- sorted unique integers of a list, within [1, max]
local function cuts(list, max)
  local seen, out = {}, {}
  for _, v in ipairs(list) do
    if v >= 1 and v <= max and not seen[v] then seen[v], out[#out + 1] = true, v end
  end
  table.sort(out)
  return out
end

--- ansatz.sweep(model, images, opts) -> {at = {[n] = {S_l / n}}, blocks = {{n =,
---   sums = {S_l}}}, n = images used}
--- One pass over the first max(ns, boot_n) images in order. The AGOP over the first n
--- images is a running sum, so one pass gives it at every n of opts.ns: at[n][l] is the
--- factor S_l / n (float, as features.agop returns it) of the first n images. The first
--- opts.boot_n images are also cut into opts.blocks nearly equal blocks, whose sums S_l
--- (not divided) ansatz.bootstrap resamples. Memory: one double c_out^2 accumulator per
--- layer plus blocks x sum(c_out^2) floats. opts: ns = {}, boot_n = 0, blocks = 0,
--- batch = 50, progress = false (true: a line per chunk on stderr).
function ansatz.sweep(model, images, opts)
  opts = util.options(opts, {ns = {}, boot_n = 0, blocks = 0, batch = 50, progress = false},
    'ansatz.sweep')
  local total = images:size(1)
  local boot_n = math.min(opts.boot_n, total)
  local nb = boot_n > 0 and math.min(opts.blocks, boot_n) or 0
  local block_end = {} -- the image at which each block ends
  for k = 1, nb do block_end[k] = (k * boot_n) // nb end
  local ns = cuts(opts.ns, total)
  local last = math.max(boot_n, ns[#ns] or 0)
  if last == 0 then error('ansatz.sweep: nothing to do (no ns, no boot_n)', 2) end
  local stops = cuts(util.copy(block_end), last)
  for _, v in ipairs(ns) do stops[#stops + 1] = v end
  stops = cuts(stops, last)
  local want_n = {}
  for _, v in ipairs(ns) do want_n[v] = true end

  local convs = model.convs
  local acc, at, blocks = {}, {}, {}
  for l, conv in ipairs(convs) do acc[l] = agop.dmatrix(conv.out_channels) end
  local k, prev, t0, shown = 1, 0, agop.time(), 0
  for _, stop in ipairs(stops) do
    local m = stop - prev
    local _, _, s = features.agop(model, images:narrow(1, prev + 1, m),
      {batch = opts.batch, expand = false})
    for l = 1, #convs do
      local sum = s[l] * m
      acc[l]:add(sum)
      if k <= nb then
        blocks[k] = blocks[k] or {n = 0, sums = {}}
        blocks[k].sums[l] = blocks[k].sums[l] and (blocks[k].sums[l] + sum) or sum
      end
    end
    if k <= nb then
      blocks[k].n = blocks[k].n + m
      if stop == block_end[k] then k = k + 1 end
    end
    if want_n[stop] then
      at[stop] = {}
      for l = 1, #convs do at[stop][l] = acc[l]:tensor(stop) end
    end
    if opts.progress and (stop >= shown + last / 10 or want_n[stop] or stop == last) then
      shown = stop
      io.stderr:write(fmt('agop sweep: %d/%d images, %.0fs\n', stop, last, agop.time() - t0))
    end
    prev = stop
  end
  return {at = at, blocks = blocks, n = last}
end

--- ansatz.bootstrap(model, blocks, opts) -> {[l] = {low, high, low_off, high_off,
---   values = {...}}}
--- Bootstrap over images for ρ(CNFM_l, AGOP_l^½) and its off-diagonal version: each
--- replicate draws as many blocks as there are, with replacement, from ansatz.sweep's
--- blocks (blocks of one image: the plain image bootstrap), and recomputes AGOP^½ from
--- S* = sum c_b S_b / sum c_b n_b. opts: replicates = 200, seed = 1, level = 0.95,
--- layers = all, method = 'bca' (or 'percentile'). BCa, because the replicates of a
--- correlation sit below the estimate (a resample repeats images, so its AGOP is
--- noisier): the percentile interval then lies at or below the estimate itself.
function ansatz.bootstrap(model, blocks, opts)
  opts = util.options(opts, {replicates = 200, seed = 1, level = 0.95, layers = false,
    method = 'bca'}, 'ansatz.bootstrap')
  local layers = opts.layers or {}
  if not opts.layers then for l = 1, #model.convs do layers[l] = l end end
  local nb = #blocks
  local res = stats.bootstrap(nb, opts.replicates, agop.Generator(opts.seed), function(c)
    local out = {}
    for _, l in ipairs(layers) do
      local conv = model.convs[l]
      local acc, n = agop.dmatrix(conv.out_channels), 0
      for b = 1, nb do
        if c[b] > 0 then
          acc:add(c[b] == 1 and blocks[b].sums[l] or blocks[b].sums[l] * c[b])
          n = n + c[b] * blocks[b].n
        end
      end
      local r = ansatz.compare(conv, acc:tensor(n))
      out[l], out[-l] = r.rho, r.rho_off
    end
    return out
  end, opts.level, opts.method)
  local out = {}
  for _, l in ipairs(layers) do
    out[l] = {low = res[l].low, high = res[l].high, low_off = res[-l].low,
      high_off = res[-l].high, values = res[l].values, estimate = res[l].estimate,
      z0 = res[l].z0, accel = res[l].accel}
  end
  return out
end

--- K distinct steps evenly spaced from 0 to total (both included; fewer when total < K).
function ansatz.track_steps(total, k)
  local out, seen = {}, {}
  if k < 2 then return {0, total} end
  for i = 0, k - 1 do
    local s = math.floor(i * total / (k - 1) + 0.5)
    if not seen[s] then seen[s], out[#out + 1] = true, s end
  end
  return out
end

ansatz.TRACK_FIELDS = {'step', 'layer', 'loss', 'corr_nfm_sqrt_agop', 'corr_nfm_sqrt_agop_offdiag',
  'null_rho_nfm_nfm_half', 'corr_init_nfm', 'weight_change', 'seconds'}

--- ansatz.tracker(model, init_model, images, opts) -> tracker
--- tracker:record(step, loss) measures, per conv layer of the model as it is now:
--- ρ(CNFM_t, AGOP_t^½) (and off-diagonal), the null ρ(N_t, N_t^½), ρ(CNFM_0, CNFM_t) and
--- |W_t - W_0| / |W_0|, the AGOP over `images`; and rewrites opts.path (CSV, atomically)
--- when given. Rows already in that file (a resumed run) are kept; a step recorded again
--- replaces its rows. opts: batch = 50, path = false.
function ansatz.tracker(model, init_model, images, opts)
  opts = util.options(opts, {batch = 50, path = false}, 'ansatz.tracker')
  local n0, w0 = {}, {}
  for l, conv in ipairs(init_model.convs) do
    w0[l], n0[l] = conv.weight, features.nfm(conv)
  end
  local rows = (opts.path and util.exists(opts.path)) and util.read_csv(opts.path, {numbers = true}) or {}
  local self = {rows = rows}
  local function write()
    -- under mpirun every rank records (the AGOP is a collective), rank 0 alone writes
    if not opts.path or not require('agop.dist').is_root() then return end
    table.sort(rows, function(a, b)
      return a.step < b.step or (a.step == b.step and a.layer < b.layer) end)
    local lines = {table.concat(ansatz.TRACK_FIELDS, ',')}
    for _, r in ipairs(rows) do
      local cells = {}
      for i, key in ipairs(ansatz.TRACK_FIELDS) do
        local v = r[key]
        cells[i] = (v == nil or v ~= v) and '' or (math.type(v) == 'integer' and tostring(v) or fmt('%.6g', v))
      end
      lines[#lines + 1] = table.concat(cells, ',')
    end
    util.write_file(opts.path, table.concat(lines, '\n') .. '\n')
  end
  function self.record(_, step, loss)
    local t0 = agop.time()
    local _, _, s = features.agop(model, images, {batch = opts.batch, expand = false})
    local kept = {}
    for _, r in ipairs(rows) do if r.step ~= step then kept[#kept + 1] = r end end
    rows = kept
    for l, conv in ipairs(model.convs) do
      local nfm = features.nfm(conv)
      local c = ansatz.compare(conv, s[l])
      rows[#rows + 1] = {step = step, layer = l, loss = loss, corr_nfm_sqrt_agop = c.rho,
        corr_nfm_sqrt_agop_offdiag = c.rho_off,
        null_rho_nfm_nfm_half = (ansatz.null(conv)),
        corr_init_nfm = features.corr(n0[l], nfm),
        weight_change = (conv.weight - w0[l]):norm() / w0[l]:norm(),
        seconds = agop.time() - t0}
    end
    self.rows = rows
    write()
    return rows
  end
  return self
end

--- Draws the dynamics: one figure per layer (path_fmt with the layer number, e.g.
--- 'dir/dynamics_conv%d.png'), the four curves against the training step.
function ansatz.figure_dynamics(rows, path_fmt, title)
  local plot = require('agop.plot')
  local by = {}
  for _, r in ipairs(rows) do
    by[r.layer] = by[r.layer] or {}
    table.insert(by[r.layer], r)
  end
  local curves = {
    {'corr_nfm_sqrt_agop', 'ρ(CNFM_t, AGOP_t^½)'},
    {'null_rho_nfm_nfm_half', 'null ρ(N_t, N_t^½)'},
    {'corr_init_nfm', 'ρ(CNFM_0, CNFM_t)'},
    {'weight_change', '|W_t - W_0| / |W_0|'},
  }
  local written = {}
  for l, rs in pairs(by) do
    table.sort(rs, function(a, b) return a.step < b.step end)
    local series = {}
    for _, c in ipairs(curves) do
      local x, y = {}, {}
      for i, r in ipairs(rs) do x[i], y[i] = r.step, r[c[1]] end
      series[#series + 1] = {x = x, y = y, label = c[2], marker = #rs <= 30 and 'circle' or nil}
    end
    local path = fmt(path_fmt, l)
    plot.lines{series = series, xlabel = 'training step', ylabel = 'value',
      title = fmt('%sconv%d', title and (title .. ': ') or '', l), grid = true}:save(path)
    written[#written + 1] = path
  end
  return written
end

return ansatz
