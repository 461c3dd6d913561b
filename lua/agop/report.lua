-- agop.report: what experiment scripts write - the run folder with its run.json, Table 1
-- in text, Markdown and CSV, and the study's figures - and report.expand_matrices, which
-- rebuilds a run's big .npy matrices from its committed files.
local agop = require('agop')
local util = require('agop.util')
local json = require('agop.json')
local check = require('agop.check')
local files = require('agop.files')

local report = {}

-- The seed study's Table 1 (VGG11 on MNIST; AGOP^1/2 over 10 classes, 11 images).
report.seed_table1 = {
  corr_init_trained = {.575, .111, .107, .068, .109, .059, .067, .044},
  corr_nfm_agop = {.880, .903, .900, .814, .799, .695, .713, .661},
}

local Run = {}
Run.__index = Run

-- A command-line word as a POSIX shell reads it back ('it''s' quoted when needed).
local function shell_word(w)
  w = tostring(w)
  if w ~= '' and not w:find("[^%w%-%+_%./=:,@%%]") then return w end
  return "'" .. w:gsub("'", "'\\''") .. "'"
end

--- The exact command of this process: agoplua, the script and its arguments, quoted so
--- that pasting it into a shell runs the same thing.
function report.command(script)
  local words = {'agoplua', script}
  for i = 1, (arg and #arg or 0) do words[#words + 1] = shell_word(arg[i]) end
  return table.concat(words, ' ')
end

--- {commit = sha, dirty = bool, changed = {files}} of the git checkout that holds the
--- Lua library (so the code that ran), or {error = reason} when git cannot tell. dirty
--- counts tracked files with changes outside results/ (untracked files, and results a
--- rerun overwrites, do not).
function report.git_info()
  local here = package.searchpath('agop.report', package.path)
  local root = here and here:match('^(.*)/lua/agop/report%.lua$')
  if not root then return {error = 'the Lua library is not inside a checkout'} end
  local function sh(cmd)
    local p = io.popen(string.format("git -C %s %s 2>/dev/null", shell_word(root), cmd))
    if not p then return nil end
    local out = p:read('a')
    local ok = p:close()
    return ok and out or nil
  end
  local commit = sh('rev-parse HEAD')
  if not commit or not commit:match('^%x+') then
    return {error = 'git rev-parse failed in ' .. root}
  end
  -- results/ holds outputs, not code: a rerun that overwrites committed results is clean
  local status = sh("status --porcelain --untracked-files=no -- . ':(exclude)results'") or ''
  local changed = {}
  for line in status:gmatch('[^\n]+') do changed[#changed + 1] = line:sub(4) end
  return {commit = commit:match('^%x+'), dirty = #changed > 0, changed = changed}
end

-- The thread counts in force now: OpenMP's (our kernels) and OpenBLAS's.
local function thread_counts()
  return agop.get_threads(), agop.blas_info().threads
end

--- Opens the run folder `out` for `script`; run.json records config, versions, timings,
--- the git commit (and whether the tree was dirty), the thread counts actually used
--- (at the start and again at the end) and the exact command.
function report.run(out, script, config)
  util.mkdir(out)
  local blas = agop.blas_info()
  local omp, ob = thread_counts()
  local self = setmetatable({out = out, t0 = agop.time(), info = {
    script = script, config = config,
    command = report.command(script),
    cwd = os.getenv('PWD'),
    env = {AGOP_THREADS = os.getenv('AGOP_THREADS'),
      OPENBLAS_CORETYPE = os.getenv('OPENBLAS_CORETYPE'),
      OMP_NUM_THREADS = os.getenv('OMP_NUM_THREADS')},
    git = report.git_info(),
    started = os.date('!%Y-%m-%dT%H:%M:%SZ'),
    seed = config.seed,
    versions = {agoplua = agop.version, lua = _VERSION, openblas = blas.config,
      openblas_core = blas.core, libpng = agop.libpng_version},
    threads = omp, openblas_threads = ob,
    timings = {},
  }}, Run)
  return self
end

function Run:path(name) return self.out .. '/' .. name end

function Run:set(key, value) self.info[key] = value end

--- Runs fn, records its wall time under timings[name] (seconds), returns its results.
function Run:time(name, fn)
  local t0 = agop.time()
  local r = table.pack(fn())
  self.info.timings[name] = agop.time() - t0
  return table.unpack(r, 1, r.n)
end

--- Writes tensor as the .npy file `name` and records its shape, trace and Frobenius norm
--- in run.json under matrices[name] (report.expand_matrices checks rebuilt files by them).
function Run:npy(name, tensor)
  files.save_npy(self:path(name), tensor)
  self.info.matrices = self.info.matrices or {}
  self.info.matrices[name] = report.matrix_stats(tensor)
end

function Run:write(name, text) util.write_file(self:path(name), text) end

--- Writes run.json (with final metrics and total time).
function Run:finish(metrics)
  self.info.metrics = metrics
  self.info.timings.total = agop.time() - self.t0
  local hwm = agop.memory()
  self.info.peak_memory_bytes = hwm
  self.info.finished = os.date('!%Y-%m-%dT%H:%M:%SZ')
  -- a script may change the thread count after report.run: the counts at the end win
  self.info.threads, self.info.openblas_threads = thread_counts()
  util.write_file(self:path('run.json'), json.encode(self.info, {indent = 2}) .. '\n')
end

--- {shape = {...}, fro = Frobenius norm, trace = sum of the diagonal (square matrices
--- only, else nil)}, both summed in double.
function report.matrix_stats(t)
  local shape = t:size()
  local trace
  if #shape == 2 and shape[1] == shape[2] then
    trace = 0
    for i = 1, shape[1] do trace = trace + t:get(i, i) end
  end
  return {shape = shape, trace = trace, fro = t:norm()}
end

-- |a - b| relative to the larger magnitude (0 when equal)
local function rel_diff(a, b)
  if a == b then return 0 end
  return math.abs(a - b) / math.max(math.abs(a), math.abs(b))
end

report.expand_tolerance = 1e-5

-- The matrices a run folder's committed files rebuild: conv<l>_<kind>.npy from `from`.
local expand_kinds = {
  {kind = 'nfm_init', from = 'model_init.safetensors'},
  {kind = 'nfm', from = 'model.safetensors'},
  {kind = 'agop', from = 'model.safetensors'}, -- and conv<l>_agop_s.npy
}

local EXPAND = 'report.expand_matrices'
local function expand_fail(msg, ...) error(EXPAND .. ': ' .. string.format(msg, ...), 0) end

-- The "matrices" records of dir/run.json, or an error saying what is wrong.
local function matrix_records(dir)
  local run_json = dir .. '/run.json'
  if not util.exists(dir) then expand_fail('folder %s does not exist', dir) end
  if not util.exists(run_json) then
    expand_fail('%s not found (expected the folder of a scripts/vgg11_mnist.lua run)', run_json)
  end
  local ok, info = pcall(json.decode, util.read_file(run_json))
  if not ok or type(info) ~= 'table' then
    expand_fail('%s is not valid JSON: %s', run_json, tostring(info))
  end
  local records = info.matrices
  if type(records) ~= 'table' or next(records) == nil then
    expand_fail('%s has no "matrices" record: the run was made by an older '
      .. 'scripts/vgg11_mnist.lua that did not write the AGOP factors conv<l>_agop_s.npy; '
      .. 'rerun the study (agoplua scripts/vgg11_mnist.lua --out %s) to get them', run_json, dir)
  end
  return records
end

-- What to build, in layer order ({name, layer, kind, from, inputs}), and what is there
-- already (kept unless force).
local function expand_plan(dir, records, force)
  local layers, seen = {}, {}
  for name in pairs(records) do
    local l = tonumber(name:match('^conv(%d+)_') or '')
    if l and not seen[l] then layers[#layers + 1], seen[l] = l, true end
  end
  table.sort(layers)
  local todo, present = {}, {}
  for _, l in ipairs(layers) do
    for _, k in ipairs(expand_kinds) do
      local name = string.format('conv%d_%s.npy', l, k.kind)
      if records[name] and util.exists(dir .. '/' .. name) and not force then
        present[#present + 1] = name
      elseif records[name] then
        local inputs = {k.from}
        if k.kind == 'agop' then inputs[2] = string.format('conv%d_agop_s.npy', l) end
        todo[#todo + 1] = {name = name, layer = l, kind = k.kind, from = k.from, inputs = inputs}
      end
    end
  end
  return todo, present
end

-- Checks matrix m (rebuilt from `inputs`) against its record; returns its shape and the
-- relative differences of trace and Frobenius norm.
local function check_record(dir, records, name, m, inputs)
  local rec, got = records[name], report.matrix_stats(m)
  if type(rec) ~= 'table' or type(rec.shape) ~= 'table' or type(rec.trace) ~= 'number'
     or type(rec.fro) ~= 'number' then
    expand_fail('%s/run.json: the record of %s has no shape, trace and fro', dir, name)
  end
  local shape = check.sizes(got.shape)
  if shape ~= check.sizes(rec.shape) then
    expand_fail('%s: rebuilt as %s, but run.json records %s (not written)', name, shape,
      check.sizes(rec.shape))
  end
  local tol = report.expand_tolerance
  local dt, df = rel_diff(got.trace, rec.trace), rel_diff(got.fro, rec.fro)
  if not (dt <= tol and df <= tol) then
    expand_fail('%s: the matrix rebuilt from %s does not match run.json (trace %.9g vs %.9g, '
      .. 'fro %.9g vs %.9g: relative differences %.2e, %.2e > %.0e); not written: are '
      .. 'those files the ones this run wrote?', name, inputs, got.trace, rec.trace,
      got.fro, rec.fro, dt, df, tol)
  end
  return shape, dt, df
end

--- report.expand_matrices(dir [, opts]) -> {written = {names}, present = {names}}
--- Rebuilds the conv<l>_nfm_init.npy, conv<l>_nfm.npy and conv<l>_agop.npy files that
--- dir/run.json lists (under "matrices") but dir lacks, from what a run commits:
--- model_init.safetensors (N_0 = W_0^T W_0), model.safetensors (N = W^T W) and the AGOP
--- factors conv<l>_agop_s.npy (G = W^T S W). Every rebuilt matrix is checked against the
--- shape, trace and Frobenius norm run.json recorded (relative difference <=
--- report.expand_tolerance) before it is written (atomically), so a wrong file is never
--- left behind. opts: force = false (true: rebuild files that exist too), log = print.
function report.expand_matrices(dir, opts)
  if type(dir) ~= 'string' or dir == '' then
    error(EXPAND .. ': dir must be a folder name, got ' .. tostring(dir), 0)
  end
  opts = util.options(opts, {force = false, log = print}, EXPAND)
  local log = opts.log or function() end
  local fmt = string.format
  local function path(name) return dir .. '/' .. name end
  local records = matrix_records(dir)
  local todo, present = expand_plan(dir, records, opts.force)
  local function count(n) return fmt('%d matri%s', n, n == 1 and 'x' or 'ces') end
  log(fmt('expand: %s: %s to write, %s already there', dir, count(#todo), count(#present)))

  -- every input present before any work
  local nets = {}
  for _, t in ipairs(todo) do
    for _, f in ipairs(t.inputs) do
      if not util.exists(path(f)) then
        expand_fail('%s is missing: %s cannot be rebuilt without it', path(f), t.name)
      end
    end
    nets[t.from] = true
  end
  local models, features = require('agop.models'), require('agop.features')
  for _, f in ipairs{'model_init.safetensors', 'model.safetensors'} do
    if nets[f] then nets[f] = models.load(path(f)) end
  end

  local written = {}
  for _, t in ipairs(todo) do
    local net = nets[t.from]
    local conv = net.convs[t.layer]
    if not conv then
      expand_fail('%s has %d conv layers, run.json lists %s', path(t.from), #net.convs, t.name)
    end
    local m
    if t.kind == 'agop' then
      local sname = t.inputs[2]
      local s = files.load_npy(path(sname))
      if records[sname] then check_record(dir, records, sname, s, sname) end
      local okx, r = pcall(features.agop_expand, s, conv)
      if not okx then expand_fail('%s: %s', sname, tostring(r)) end
      m = r
    else
      m = features.nfm(conv)
    end
    local shape, dt, df = check_record(dir, records, t.name, m, table.concat(t.inputs, ' and '))
    files.save_npy(path(t.name), m)
    written[#written + 1] = t.name
    log(fmt('  %-22s %-10s trace rel diff %.1e, fro rel diff %.1e: written', t.name, shape,
            dt, df))
    m = nil
    collectgarbage()
  end
  log(fmt('expand: wrote %s, %s already there (%s)', count(#written), count(#present), dir))
  return {written = written, present = present}
end

local function f3(x) return x and string.format('%.3f', x) or '-' end

-- The columns of Table 1, in CSV order: key (CSV name) and Markdown header. The first
-- nine are the original table's; the rest are issue 14's nulls, off-diagonal ρ and CIs.
-- `brief` (a position) puts a column in the short tables too: the text table of
-- report.table1 and the Markdown of report.table1_seeds; `text` is its text header and
-- width there.
report.table1_columns = {
  {'weight_change', '‖W−W₀‖/‖W₀‖', brief = 1, text = {'|dW|/|W0|', 8}},
  {'corr_init_trained', 'ρ(init CNFM, trained CNFM)', brief = 2, text = {'init~trn', 10}},
  {'corr_nfm_agop', 'ρ(CNFM, AGOP)', text = {'nfm~agop', 10}, text_only = 3},
  {'corr_nfm_sqrt_agop', 'ρ(CNFM, AGOP^½)', brief = 4, text = {'nfm~agop½', 10}},
  {'cos_init_trained', 'cos(init, trained)'},
  {'cos_nfm_agop', 'cos(CNFM, AGOP)'},
  {'cos_nfm_sqrt_agop', 'cos(CNFM, AGOP^½)'},
  {'corr_init_nfm_sqrt_agop', 'control: ρ(CNFM, AGOP^½) at init', brief = 6,
   text = {'at init', 10}},
  {'null_rho_nfm_nfm_half', 'null: ρ(CNFM, CNFM^½)', brief = 5, text = {'null n~n½', 10}},
  {'null_rho_init', 'null at init: ρ(N₀, N₀^½)'},
  {'ci_low', 'CI low', text = {'95% CI', 16}, text_only = 7},
  {'ci_high', 'CI high'},
  {'corr_nfm_sqrt_agop_offdiag', 'ρ(CNFM, AGOP^½) off-diag', brief = 8},
  {'ci_low_offdiag', 'CI low off-diag'},
  {'ci_high_offdiag', 'CI high off-diag'},
  {'corr_init_trained_offdiag', 'ρ(init, trained CNFM) off-diag', brief = 9},
}

local TABLE1_NOTE = '‖W−W₀‖/‖W₀‖: how far training moved the layer\'s weights from their initial values. ' ..
  'ρ: Pearson correlation over matrix entries; cos: cosine similarity (uncentered); off-diag: ρ over the ' ..
  'entries i ≠ j only (without the shared diagonal). ' ..
  'Control: the same correlation for the untrained network (its CNFM and AGOP^½ on the same images). ' ..
  'Null: ρ(N, N^½), what ρ(CNFM, AGOP^½) would be if the conv outputs\' gradient covariance S were a ' ..
  'multiple of the identity (G = WᵀSW), i.e. with nothing learned about the data. ' ..
  'CI: 95 % BCa bootstrap over the AGOP images (run.json: "bootstrap"). ' ..
  'AGOP^½ is the patch-AGOP\'s matrix square root (negative eigenvalues clipped). ' ..
  'Seed columns: the reference study (VGG11 on MNIST, AGOP^½ over 10 classes and 11 images).'

-- The columns of the table for one format: the spec's columns (in CSV order, or sorted by
-- `brief` for the short ones), between the layer and weight columns and the seed study's.
local function table1_layout(short)
  local cols = {}
  for _, c in ipairs(report.table1_columns) do
    if not short or (short == 'text' and c.text) or (short == 'seeds' and c.brief) then
      cols[#cols + 1] = c
    end
  end
  if short then
    table.sort(cols, function(a, b) return (a.brief or a.text_only) < (b.brief or b.text_only) end)
  end
  return cols
end

-- A table as lines: header cells, then one row of cells per layer; `sep` between cells,
-- each formatted by `fmt` (one per column; a nil header cell is left out with its sep).
local function lines_of(header, rows, fmts, seps, out)
  local function line(cells)
    local parts = {}
    for i, v in ipairs(cells) do
      if v ~= false then
        parts[#parts + 1] = (i > 1 and seps[i] or '') .. string.format(fmts[i], v)
      end
    end
    return table.concat(parts)
  end
  out[#out + 1] = line(header)
  for _, cells in ipairs(rows) do out[#out + 1] = line(cells) end
  return out
end

--- Table 1 from per-layer rows: {text=, markdown=, csv=}. Missing values print as '-'
--- (Markdown, text) or an empty cell (CSV). All three are written from
--- report.table1_columns.
function report.table1(rows)
  local seed = report.seed_table1
  local cols, brief = table1_layout(false), table1_layout('text')
  -- text: fixed widths, the brief columns, the seed's two values under one header
  local th, tf, ts = {'layer', 'weight'}, {'%-6s', '%-14s'}, {'', ' '}
  for _, c in ipairs(brief) do
    th[#th + 1], tf[#tf + 1], ts[#ts + 1] = c.text[1], '%' .. c.text[2] .. 's', ' '
  end
  th[#th + 1], th[#th + 2] = 'seed: init~trn nfm~agop½', false
  tf[#tf + 1], tf[#tf + 2], ts[#ts + 1], ts[#ts + 2] = '%14s', '%8s', '   ', ' '
  -- Markdown and CSV: every column
  local head, keys = {'layer', 'weight'}, {'layer', 'weight_shape'}
  for _, c in ipairs(cols) do head[#head + 1], keys[#keys + 1] = c[2], c[1] end
  head[#head + 1], head[#head + 2] = 'seed ρ(init, trained)', 'seed ρ(CNFM, AGOP^½)'
  keys[#keys + 1], keys[#keys + 2] = 'seed_corr_init_trained', 'seed_corr_nfm_sqrt_agop'
  local trows, mrows, crows = {}, {}, {}
  for l, r in ipairs(rows) do
    local si, sn = seed.corr_init_trained[l], seed.corr_nfm_agop[l]
    local t, m, c = {tostring(l), r.shape}, {tostring(l), r.shape}, {tostring(l), r.shape}
    for _, col in ipairs(brief) do
      if col[1] == 'ci_low' then
        t[#t + 1] = r.ci_low and string.format('[%.3f, %.3f]', r.ci_low, r.ci_high) or '-'
      else
        t[#t + 1] = f3(r[col[1]])
      end
    end
    t[#t + 1], t[#t + 2] = f3(si), f3(sn)
    for _, col in ipairs(cols) do
      local v = r[col[1]]
      m[#m + 1], c[#c + 1] = f3(v), v and string.format('%.6f', v) or ''
    end
    m[#m + 1], m[#m + 2] = f3(si), f3(sn)
    c[#c + 1], c[#c + 2] = tostring(si or ''), tostring(sn or '')
    trows[l], mrows[l], crows[l] = t, m, c
  end
  return {text = table.concat(lines_of(th, trows, tf, ts, {}), '\n'),
    markdown = report.markdown(head, mrows, TABLE1_NOTE), csv = report.csv(keys, crows)}
end

--- A Markdown table (and a note after a blank line) from header and row cells.
function report.markdown(head, rows, note)
  local md = {'| ' .. table.concat(head, ' | ') .. ' |', '|' .. string.rep('---|', #head)}
  for _, cells in ipairs(rows) do md[#md + 1] = '| ' .. table.concat(cells, ' | ') .. ' |' end
  if note then md[#md + 1], md[#md + 2] = '', note end
  return table.concat(md, '\n') .. '\n'
end

--- CSV text (no quoting: cells are numbers and plain names) from header and row cells.
function report.csv(keys, rows)
  local out = {table.concat(keys, ',')}
  for _, cells in ipairs(rows) do out[#out + 1] = table.concat(cells, ',') end
  return table.concat(out, '\n') .. '\n'
end

--- Table 1 over training seeds: per_seed[i] is seed seeds[i]'s list of rows (as
--- report.table1 takes them), accs[i] its test accuracy. Every numeric column becomes
--- <key>_mean and <key>_std (sample std over seeds); the Markdown shows the brief ones.
--- Returns {markdown=, csv=, rows=}.
function report.table1_seeds(per_seed, seeds, accs)
  local stats = require('agop.stats')
  local cols, brief = table1_layout(false), table1_layout('seeds')
  local nl = #per_seed[1]
  local out_rows = {}
  local keys = {'layer', 'weight_shape'}
  for _, c in ipairs(cols) do keys[#keys + 1], keys[#keys + 2] = c[1] .. '_mean', c[1] .. '_std' end
  keys[#keys + 1] = 'seeds'
  local mhead = {'layer', 'weight'}
  for _, c in ipairs(brief) do mhead[#mhead + 1] = c[2] end
  local crows, mrows = {}, {}
  for l = 1, nl do
    local r = {layer = l, shape = per_seed[1][l].shape, seeds = #per_seed}
    local cells = {tostring(l), r.shape}
    for _, c in ipairs(cols) do
      local xs = {}
      for i = 1, #per_seed do xs[i] = per_seed[i][l][c[1]] or 0 / 0 end
      local m, sd, n = stats.mean_std(xs)
      r[c[1]] = {mean = m, std = sd, n = n}
      cells[#cells + 1] = m and string.format('%.6f', m) or ''
      cells[#cells + 1] = sd and string.format('%.6f', sd) or ''
    end
    cells[#cells + 1] = tostring(#per_seed)
    crows[l] = cells
    local mc = {tostring(l), r.shape}
    for _, c in ipairs(brief) do
      local k = c[1]
      mc[#mc + 1] = stats.pm(r[k].mean, r[k].std, r[k].n, '%.3f')
    end
    mrows[l] = mc
    out_rows[l] = r
  end
  local am, asd, an = stats.mean_std(accs)
  local note = string.format('Mean ± sample std over %d training seeds (%s); test accuracy %s %%. ' ..
    'Each seed\'s full table: seed<k>/table1.md.', #per_seed, table.concat(seeds, ', '),
    stats.pm(am and 100 * am, asd and 100 * asd, an))
  return {markdown = report.markdown(mhead, mrows, note), csv = report.csv(keys, crows),
    rows = out_rows}
end

-- ------------------------------------------------------------------------------------
-- figures (through agop.plot)

--- Resize of an (H, W) tensor to (n, n): bilinear (as the seed upscaled its input to
--- see deep layers), or 'nearest' (to show a small map's cells as they are).
function report.resize(img, n, mode)
  local h, w = img:size(1), img:size(2)
  local src = img:contiguous():tolist()
  local out = {}
  if mode == 'nearest' then
    for i = 0, n - 1 do
      local y = math.min(h - 1, i * h // n)
      for j = 0, n - 1 do out[i * n + j + 1] = src[y * w + math.min(w - 1, j * w // n) + 1] end
    end
    return agop.from_table(out, n, n)
  end
  for i = 0, n - 1 do
    local y = (i + 0.5) * h / n - 0.5
    local y0 = math.max(0, math.min(h - 1, math.floor(y)))
    local y1, fy = math.min(h - 1, y0 + 1), math.max(0, math.min(1, y - y0))
    for j = 0, n - 1 do
      local x = (j + 0.5) * w / n - 0.5
      local x0 = math.max(0, math.min(w - 1, math.floor(x)))
      local x1, fx = math.min(w - 1, x0 + 1), math.max(0, math.min(1, x - x0))
      local a, b = src[y0 * w + x0 + 1], src[y0 * w + x1 + 1]
      local c, d = src[y1 * w + x0 + 1], src[y1 * w + x1 + 1]
      out[i * n + j + 1] = (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
    end
  end
  return agop.from_table(out, n, n)
end

--- The seed's Figure 1: layer 1's CNFM beside its AGOP^1/2.
function report.figure_layer1(path, nfm1, sqrt_agop1)
  local plot = require('agop.plot')
  local fig = plot.figure{rows = 1, cols = 2, title = 'Layer 1: trained CNFM vs patch-AGOP^1/2'}
  fig:panel(1, 'heatmap', nfm1, {title = 'CNFM  W^T W', cmap = 'RdBu', symmetric = true})
  fig:panel(2, 'heatmap', sqrt_agop1, {title = 'AGOP^1/2', cmap = 'RdBu', symmetric = true})
  return fig:save(path)
end

--- All layers: CNFM (top row) and AGOP^1/2 (bottom row), one column a layer. Matrices
--- larger than `block` (default 45: the 9x9 blocks of the first five input channels)
--- show their top-left block, so that structure is not averaged away; titles say so.
function report.figure_grid(path, nfm, sqrt_agop, block)
  local plot = require('agop.plot')
  block = block or 45
  local L = #nfm
  local fig = plot.figure{rows = 2, cols = L, panel_size = {300, 300},
    title = string.format('CNFM (top) vs AGOP^1/2 (bottom), conv layers 1..%d (top-left %dx%d blocks of larger matrices)',
      L, block, block)}
  local function part(M)
    local d = M:size(1)
    if d <= block then return M, '' end
    return M:narrow(1, 1, block):narrow(2, 1, block):contiguous(), string.format(' [1:%d]', block)
  end
  for l = 1, L do
    local a, sa = part(nfm[l])
    local b, sb = part(sqrt_agop[l])
    fig:panel(l, 'heatmap', a, {title = string.format('conv%d CNFM%s', l, sa), cmap = 'RdBu',
      symmetric = true, colorbar = false})
    fig:panel(L + l, 'heatmap', b, {title = string.format('conv%d AGOP^1/2%s', l, sb), cmap = 'RdBu',
      symmetric = true, colorbar = false})
  end
  return fig:save(path)
end

--- The seed's Figures 2-3: one digit, upscaled to vis_size, and its feature map |M p| at
--- every conv layer for M = CNFM (top row) and M = AGOP^1/2 (bottom row).
function report.figure_feature_maps(path, model, digit, nfm, sqrt_agop, vis_size, label)
  local features = require('agop.features')
  local plot = require('agop.plot')
  local img = digit:dim() == 3 and digit:select(1, 1) or digit
  local big = report.resize(img, vis_size):view(1, vis_size, vis_size)
  local shown = 96 -- every map drawn at the same size, its cells kept sharp
  local function cell(map)
    return report.resize(map, shown, 'nearest'), string.format('%dx%d', map:size(1), map:size(2))
  end
  local list, titles = {report.resize(big:select(1, 1), shown)},
    {string.format('input %s', label and string.format('(%d)', label) or '')}
  for l = 1, #nfm do
    local m, sz = cell(features.feature_map(nfm[l], big, model, l))
    list[#list + 1], titles[#titles + 1] = m, string.format('conv%d NFM %s', l, sz)
  end
  list[#list + 1], titles[#titles + 1] = list[1], 'input'
  for l = 1, #sqrt_agop do
    local m, sz = cell(features.feature_map(sqrt_agop[l], big, model, l))
    list[#list + 1], titles[#titles + 1] = m, string.format('conv%d AGOP^1/2 %s', l, sz)
  end
  return plot.images(list, {cols = #nfm + 1, titles = titles, normalize = 'minmax', cmap = 'gray',
    title = string.format('|M p| over the patches p of each layer input (%dx%d digit)', vis_size, vis_size)}):save(path)
end

--- Learning curves of the init study: train loss against steps, mean over seeds with a
--- +-std band; one panel per (target, source) with the source-free rules in every panel.
function report.figure_init_curves(path, groups, order, targets)
  local plot = require('agop.plot')
  local panels = {}
  for _, t in ipairs(targets) do
    local srcs, seen = {}, {}
    for _, gk in ipairs(order) do
      local g = groups[gk]
      if g.target == t and g.source ~= '-' and not seen[g.source] then
        seen[g.source] = true
        srcs[#srcs + 1] = g.source
      end
    end
    if #srcs == 0 then srcs = {'-'} end
    for _, s in ipairs(srcs) do panels[#panels + 1] = {target = t, source = s} end
  end
  local cols = math.min(2, #panels)
  local fig = plot.figure{rows = (#panels + cols - 1) // cols, cols = cols,
    title = 'Train loss (mean +- std over seeds) by initialization rule', panel_size = {640, 420}}
  for i, p in ipairs(panels) do
    local series = {}
    for _, gk in ipairs(order) do
      local g = groups[gk]
      local runs = {}
      for _, r in ipairs(g.runs) do if not r.diverged then runs[#runs + 1] = r end end
      if g.target == p.target and (g.source == '-' or g.source == p.source) and #runs > 0 then
        local steps, mean, std = {}, {}, {}
        local n = #runs
        local len = math.huge
        for _, r in ipairs(runs) do len = math.min(len, #r.curve) end
        for k = 1, len do
          local s, ss = 0, 0
          for _, r in ipairs(runs) do s = s + r.curve[k][2] end
          local m = s / n
          for _, r in ipairs(runs) do ss = ss + (r.curve[k][2] - m) ^ 2 end
          steps[k], mean[k], std[k] = runs[1].curve[k][1], m, n > 1 and math.sqrt(ss / (n - 1)) or 0
        end
        series[#series + 1] = {x = steps, y = mean, band = std, label = g.rule}
      end
    end
    fig:panel(i, 'lines', {series = series, xlabel = 'step', ylabel = 'train loss', logy = true,
      title = string.format('target %s, sources %s', p.target, p.source == '-' and 'none' or p.source)})
  end
  return fig:save(path, {csv = true})
end

return report
