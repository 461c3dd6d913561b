-- agop.study: the bookkeeping of studies made of many independent training runs (the
-- initialization study): a resumable loop over run specs, signal-propagation
-- diagnostics at initialization, and the summary - each rule at its best learning rate
-- (chosen on held-out data), paired differences against a baseline with t intervals.
--
--   study.sweep(specs, run_one, {path =, log =})  -- runs every spec not in path (JSON,
--                                                 -- keyed by spec.id); returns {[id] = result}
--   study.signal(model, images)                   -- per conv: act_rms, zero_frac, dead_frac
--   study.drift(model, init_model)                -- per conv: ‖W−W₀‖/‖W₀‖, ρ(N₀, N)
--   study.summarize(specs, done, {baseline =})    -- cells: best lr, accuracy, paired diffs
--   study.table(cells, note)                      -- {markdown =, csv =}
--
-- A spec is a table with a unique string `id`; run_one(spec) returns a JSON-able result.
-- The loop is the only part that knows the runs are sequential: a distributed version
-- hands the same specs to run_one elsewhere and merges the results by id.
local agop = require('agop')
local util = require('agop.util')
local json = require('agop.json')
local nn = require('agop.nn')
local stats = require('agop.stats')

local study = {}
local fmt = string.format

--- Runs run_one(spec) for every spec whose id is not yet in the JSON file opts.path
--- (rewritten atomically after every run, so a stopped study continues where it
--- stopped); returns the table of results by id. opts: path (required), fresh = false
--- (ignore the file), log = print (nil: silent), estimate = false (seconds per run:
--- prints the time the remaining runs should take before starting). Under mpirun the
--- runs go to the ranks (dist.sweep); rank 0 alone logs and writes the file.
function study.sweep(specs, run_one, opts)
  opts = util.options(opts, {path = util.REQUIRED, fresh = false, log = print, estimate = false},
    'study.sweep')
  local dist = require('agop.dist')
  local root = dist.is_root()
  local log = (root and opts.log) or function() end
  local done = (root and not opts.fresh and util.exists(opts.path))
    and json.decode(util.read_file(opts.path)) or {}
  local todo = 0
  for _, s in ipairs(specs) do if done[s.id] == nil then todo = todo + 1 end end
  log(fmt('%d runs: %d finished, %d to do', #specs, #specs - todo, todo))
  if opts.estimate and todo > 0 then
    log(fmt('estimated time for the %d runs: %s (%.1fs a run)', todo,
      util.duration(todo * opts.estimate / dist.size()), opts.estimate))
  end
  local t0, i = agop.time(), 0
  return dist.sweep(specs, function(s) return run_one(s) end, {key = 'id', done = done,
    on_result = function(id, result)
      done[id], i = result, i + 1
      util.write_file(opts.path, json.encode(done, {indent = 1}) .. '\n')
      local per = (agop.time() - t0) / i
      log(fmt('[%d/%d, %s left] %s', i, todo, util.duration(per * (todo - i)), id))
    end})
end

--- Signal propagation at initialization: the model (a VGG: model.features of convs,
--- ReLUs, pools) runs `images` in evaluation mode; for every conv l:
---   act_rms   = RMS of the conv's output (bias included)
---   zero_frac = fraction of the following ReLU's outputs that are 0
---   dead_frac = fraction of that ReLU's units (channel, position) that are 0 for every
---               image of the batch
--- Returns {[l] = {act_rms =, zero_frac =, dead_frac =}} and the logits' RMS.
function study.signal(model, images)
  local was_training = model.training
  model:evaluate()
  local out, l, x = {}, 0, images
  for _, m in ipairs(model.features.modules) do
    x = m:forward(x)
    if nn.is_a(m, nn.Conv2d) then
      l = l + 1
      out[l] = {act_rms = x:norm() / math.sqrt(x:numel())}
    elseif nn.is_a(m, nn.ReLU) and out[l] and not out[l].zero_frac then
      local on = x:sign() -- 1 where the unit fires, 0 where it does not
      out[l].zero_frac = 1 - on:mean()
      out[l].dead_frac = 1 - on:sum(1):sign():mean()
    end
  end
  local logits = model:forward(images)
  if was_training then model:train() end
  return out, logits:norm() / math.sqrt(logits:numel())
end

--- How far training moved each conv layer of `model` from `init_model`: the lists
--- ‖W−W₀‖/‖W₀‖ and ρ(initial CNFM, trained CNFM), one entry a layer.
function study.drift(model, init_model)
  local features = require('agop.features')
  local moved, rho = {}, {}
  for l, conv in ipairs(model.convs) do
    local w0 = init_model.convs[l].weight
    moved[l] = (conv.weight - w0):norm() / w0:norm()
    rho[l] = features.corr(features.nfm(w0), features.nfm(conv))
  end
  return moved, rho
end

-- A cell: one (target, rule, source); spec.label names the rule (e.g. 'iso_matched(nfm)').
local function cell_key(s) return s.target .. '|' .. s.label .. '|' .. s.source end

--- study.summarize(specs, done, opts) -> list of cells, in spec order:
---   {target, label, source, lrs = {{lr, val_mean, test_mean, n, diverged}},
---    best_lr, runs (at best_lr), n, diverged, test = {mean, sd, n}, val_mean,
---    diff = t interval of the paired differences against the baseline (or nil),
---    corr = {per layer mean ρ(init, final CNFM)}, acc_epoch1 = {mean, sd, n}}
--- Each cell's learning rate is the one with the highest mean held-out accuracy over its
--- seeds (a diverged run counts as 0; with opts.select_seeds = K, over seeds 1..K only,
--- those that ran at every rate), never chosen on the test set. Paired differences
--- take each seed of the cell and of the baseline cell of the same target (opts.baseline,
--- default 'kaiming_normal', at its own best rate), over the seeds where neither diverged.
function study.summarize(specs, done, opts)
  opts = util.options(opts, {baseline = 'kaiming_normal', level = 0.95, select_seeds = false},
    'study.summarize')
  local cells, order = {}, {}
  for _, s in ipairs(specs) do
    local k = cell_key(s)
    if not cells[k] then
      cells[k] = {target = s.target, label = s.label, source = s.source, by_lr = {}, lr_order = {}}
      order[#order + 1] = k
    end
    local c = cells[k]
    if not c.by_lr[s.lr] then c.by_lr[s.lr] = {}; c.lr_order[#c.lr_order + 1] = s.lr end
    local r = done[s.id]
    if r then table.insert(c.by_lr[s.lr], r) end
  end
  local list = {}
  for _, k in ipairs(order) do
    local c = cells[k]
    c.lrs = {}
    local best, best_val
    for _, lr in ipairs(c.lr_order) do
      local runs = c.by_lr[lr]
      local val, test, div = {}, {}, 0
      for _, r in ipairs(runs) do
        local counts = not opts.select_seeds or r.seed <= opts.select_seeds
        if r.diverged then
          div = div + 1
          if counts then val[#val + 1] = 0 end
        else
          if counts then val[#val + 1] = r.val_acc end
          test[#test + 1] = r.test_acc
        end
      end
      local vm = stats.mean_std(val)
      local tm, _, tn = stats.mean_std(test)
      c.lrs[#c.lrs + 1] = {lr = lr, val_mean = vm, test_mean = tm, n = #runs, trained = tn,
        diverged = div}
      if vm and (not best_val or vm > best_val) then best, best_val = lr, vm end
    end
    c.best_lr, c.val_mean = best, best_val
    c.runs = best and c.by_lr[best] or {}
    local test, e1, corr = {}, {}, {}
    c.diverged = 0
    for _, r in ipairs(c.runs) do
      if r.diverged then c.diverged = c.diverged + 1
      else
        test[#test + 1], e1[#e1 + 1] = r.test_acc, r.acc_epoch1
        for l, v in ipairs(r.corr_init_final or {}) do
          corr[l] = corr[l] or {}
          table.insert(corr[l], v)
        end
      end
    end
    c.n = #c.runs
    local m, sd, n = stats.mean_std(test)
    c.test = {mean = m, sd = sd, n = n}
    m, sd, n = stats.mean_std(e1)
    c.acc_epoch1 = {mean = m, sd = sd, n = n}
    c.corr = {}
    for l, xs in ipairs(corr) do c.corr[l] = (stats.mean_std(xs)) end
    c.by_lr, c.lr_order = nil, nil
    list[#list + 1] = c
  end
  -- paired differences against the baseline of the same target
  local base = {}
  for _, c in ipairs(list) do
    if c.label == opts.baseline and c.source == '-' then base[c.target] = c end
  end
  local function by_seed(c)
    local t = {}
    for _, r in ipairs(c.runs) do if not r.diverged then t[r.seed] = r.test_acc end end
    return t
  end
  for _, c in ipairs(list) do
    local b = base[c.target]
    if b and b ~= c then
      c.diff = stats.t_interval((stats.paired(by_seed(c), by_seed(b))), opts.level)
    end
  end
  return list
end

local function pct(x) return x and fmt('%.2f', 100 * x) or '' end

--- The summary as Markdown and CSV (accuracies in %). Never '± 0.00' for one run.
function study.table(cells, note)
  local md = {'| target | rule | source | best lr | test acc (%) | Δ vs baseline (pts, 95% CI) | n pairs | runs | diverged | acc epoch 1 (%) | ρ(init, final CNFM) layers 1..8 |',
    '|---|---|---|---|---|---|---|---|---|---|---|'}
  local csv = {'target,rule,source,best_lr,runs,diverged,test_mean,test_std,test_n,val_mean,' ..
    'diff_mean,diff_low,diff_high,diff_n,acc_epoch1_mean,' ..
    'corr_l1,corr_l2,corr_l3,corr_l4,corr_l5,corr_l6,corr_l7,corr_l8'}
  for _, c in ipairs(cells) do
    local t, d = c.test, c.diff
    local dtext = '-'
    if d and d.n >= 2 then
      dtext = fmt('%+.2f [%+.2f, %+.2f]', 100 * d.mean, 100 * d.low, 100 * d.high)
    elseif d and d.n == 1 then
      dtext = fmt('%+.2f (n=1)', 100 * d.mean)
    end
    local cs = {}
    for l = 1, 8 do cs[l] = c.corr[l] and fmt('%.2f', c.corr[l]) or '-' end
    md[#md + 1] = fmt('| %s | %s | %s | %s | %s | %s | %d | %d | %s | %s | %s |', c.target, c.label,
      c.source, c.best_lr and fmt('%g', c.best_lr) or '-',
      stats.pm(t.mean and 100 * t.mean, t.sd and 100 * t.sd, t.n),
      dtext, d and d.n or 0, c.n, c.diverged > 0 and fmt('diverged %d/%d', c.diverged, c.n) or '0',
      stats.pm(c.acc_epoch1.mean and 100 * c.acc_epoch1.mean,
        c.acc_epoch1.sd and 100 * c.acc_epoch1.sd, c.acc_epoch1.n),
      table.concat(cs, ' '))
    local row = {c.target, c.label, c.source, c.best_lr and fmt('%g', c.best_lr) or '', c.n,
      c.diverged, pct(t.mean), pct(t.sd), t.n, pct(c.val_mean),
      d and pct(d.mean) or '', d and pct(d.low) or '', d and pct(d.high) or '', d and d.n or 0,
      pct(c.acc_epoch1.mean)}
    for l = 1, 8 do row[#row + 1] = c.corr[l] and fmt('%.4f', c.corr[l]) or '' end
    csv[#csv + 1] = table.concat(row, ',')
  end
  if note then md[#md + 1] = ''; md[#md + 1] = note end
  return {markdown = table.concat(md, '\n') .. '\n', csv = table.concat(csv, '\n') .. '\n'}
end

--- Every (cell, learning rate): held-out and test accuracy means, runs, diverged (CSV).
function study.lr_table(cells)
  local csv = {'target,rule,source,lr,val_mean,test_mean,runs,trained,diverged,best'}
  for _, c in ipairs(cells) do
    for _, x in ipairs(c.lrs) do
      csv[#csv + 1] = table.concat({c.target, c.label, c.source, fmt('%g', x.lr), pct(x.val_mean),
        pct(x.test_mean), x.n, x.trained, x.diverged, x.lr == c.best_lr and 1 or 0}, ',')
    end
  end
  return table.concat(csv, '\n') .. '\n'
end

return study
