-- agop.report: what experiment scripts write - the run folder with its run.json, Table 1
-- in text, Markdown and CSV, and the study's figures.
local agop = require('agop')
local util = require('agop.util')
local json = require('agop.json')

local report = {}

-- The seed study's Table 1 (VGG11 on MNIST; AGOP^1/2 over 10 classes, 11 images).
report.seed_table1 = {
  corr_init_trained = {.575, .111, .107, .068, .109, .059, .067, .044},
  corr_nfm_agop = {.880, .903, .900, .814, .799, .695, .713, .661},
}

local Run = {}
Run.__index = Run

--- Opens the run folder `out` for `script`; run.json records config, versions, timings.
function report.run(out, script, config)
  util.mkdir(out)
  local blas = agop.blas_info()
  local self = setmetatable({out = out, t0 = agop.time(), info = {
    script = script, config = config,
    command = 'agoplua ' .. script .. (arg and #arg > 0 and ' ' .. table.concat(arg, ' ') or ''),
    started = os.date('!%Y-%m-%dT%H:%M:%SZ'),
    seed = config.seed,
    versions = {agoplua = agop.version, lua = _VERSION, openblas = blas.config,
      openblas_core = blas.core, libpng = agop.libpng_version},
    threads = agop.get_threads(),
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

function Run:npy(name, tensor) require('agop.io').save_npy(self:path(name), tensor) end

function Run:write(name, text) util.write_file(self:path(name), text) end

--- Writes run.json (with final metrics and total time).
function Run:finish(metrics)
  self.info.metrics = metrics
  self.info.timings.total = agop.time() - self.t0
  local hwm = agop.memory()
  self.info.peak_memory_bytes = hwm
  self.info.finished = os.date('!%Y-%m-%dT%H:%M:%SZ')
  util.write_file(self:path('run.json'), json.encode(self.info, {indent = 2}) .. '\n')
end

local function f3(x) return x and string.format('%.3f', x) or '-' end

--- Table 1 from per-layer rows: {text=, markdown=, csv=}.
function report.table1(rows)
  local seed = report.seed_table1
  local text = {string.format('%-6s %-14s %10s %10s %10s %10s   %s',
    'layer', 'weight', 'init~trn', 'nfm~agop', 'nfm~agop½', 'cos n~a½', 'seed: init~trn nfm~agop½')}
  local md = {
    '| layer | weight | ρ(init CNFM, trained CNFM) | ρ(CNFM, AGOP) | ρ(CNFM, AGOP^½) | cos(init, trained) | cos(CNFM, AGOP) | cos(CNFM, AGOP^½) | seed ρ(init, trained) | seed ρ(CNFM, AGOP^½) |',
    '|---|---|---|---|---|---|---|---|---|---|'}
  local csv = {'layer,weight_shape,corr_init_trained,corr_nfm_agop,corr_nfm_sqrt_agop,cos_init_trained,cos_nfm_agop,cos_nfm_sqrt_agop,seed_corr_init_trained,seed_corr_nfm_sqrt_agop'}
  for l, r in ipairs(rows) do
    text[#text + 1] = string.format('%-6d %-14s %10s %10s %10s %10s   %14s %8s', l, r.shape,
      f3(r.corr_init_trained), f3(r.corr_nfm_agop), f3(r.corr_nfm_sqrt_agop),
      f3(r.cos_nfm_sqrt_agop), f3(seed.corr_init_trained[l]), f3(seed.corr_nfm_agop[l]))
    md[#md + 1] = string.format('| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |', l, r.shape,
      f3(r.corr_init_trained), f3(r.corr_nfm_agop), f3(r.corr_nfm_sqrt_agop),
      f3(r.cos_init_trained), f3(r.cos_nfm_agop), f3(r.cos_nfm_sqrt_agop),
      f3(seed.corr_init_trained[l]), f3(seed.corr_nfm_agop[l]))
    csv[#csv + 1] = string.format('%d,%s,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%s,%s', l, r.shape,
      r.corr_init_trained, r.corr_nfm_agop, r.corr_nfm_sqrt_agop, r.cos_init_trained,
      r.cos_nfm_agop, r.cos_nfm_sqrt_agop, seed.corr_init_trained[l] or '', seed.corr_nfm_agop[l] or '')
  end
  md[#md + 1] = ''
  md[#md + 1] = 'ρ: Pearson correlation over matrix entries; cos: cosine similarity (uncentered). ' ..
    'AGOP^½ is the patch-AGOP\'s matrix square root (negative eigenvalues clipped). ' ..
    'Seed columns: the reference study (VGG11 on MNIST, AGOP^½ over 10 classes and 11 images).'
  return {text = table.concat(text, '\n'), markdown = table.concat(md, '\n') .. '\n',
    csv = table.concat(csv, '\n') .. '\n'}
end

return report
