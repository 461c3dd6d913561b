-- agop.study: the resumable loop, the signal diagnostics against plain loops, and the
-- summary (rate chosen on held-out accuracy, paired differences) on made-up runs whose
-- answers are worked out by hand.
local lu = require('luaunit')
local agop = require('agop')
local models = require('agop.models')
local nn = require('agop.nn')
local study = require('agop.study')
local helpers = require('helpers')

TestStudy = {}

function TestStudy:test_sweep_runs_each_spec_once_and_resumes()
  local d = helpers.make_dir()
  local path = d .. '/runs.json'
  local specs = {{id = 'a'}, {id = 'b'}, {id = 'c'}}
  local calls = {}
  local function run_one(s)
    calls[#calls + 1] = s.id
    if s.id == 'b' and #calls < 3 then error('stopped', 0) end -- as if killed during b
    return {value = s.id .. '!'}
  end
  lu.assertFalse(pcall(study.sweep, specs, run_one, {path = path, log = false}))
  lu.assertEquals(calls, {'a', 'b'})
  local done = study.sweep(specs, run_one, {path = path, log = false})
  lu.assertEquals(calls, {'a', 'b', 'b', 'c'}) -- a was kept, b and c run
  lu.assertEquals(done.c.value, 'c!')
  study.sweep(specs, run_one, {path = path, log = false})
  lu.assertEquals(#calls, 4)
  os.execute("rm -rf '" .. d .. "'")
end

function TestStudy:test_signal_diagnostics_match_plain_loops()
  local m = models.vgg11{width = 1 / 32, generator = agop.Generator(1)}
  local x = agop.randn(agop.Generator(2), 3, 1, 32, 32)
  -- conv 2's bias pushed down: many of its ReLUs never fire
  m.convs[2].bias:fill(-0.5)
  -- the brute force below reads each conv's output after the whole forward: VGG11's
  -- in-place ReLUs would have overwritten it with their own
  for _, mod in ipairs(m.features.modules) do
    if nn.is_a(mod, nn.ReLU) then mod.inplace = false end
  end
  local sig, logit_rms = study.signal(m, x)
  lu.assertEquals(#sig, 8)
  lu.assertTrue(logit_rms > 0)
  -- brute force, from the modules' outputs of that forward
  local mods = m.features.modules
  local l = 0
  for i, mod in ipairs(mods) do
    if nn.is_a(mod, nn.Conv2d) then
      l = l + 1
      local y = mod.output:contiguous():view(-1):totable()
      local ss = 0
      for _, v in ipairs(y) do ss = ss + v * v end
      lu.assertAlmostEquals(sig[l].act_rms, math.sqrt(ss / #y), 1e-5 * math.sqrt(ss / #y) + 1e-9)
      local r = mods[i + 1].output
      local per = r:numel() // 3
      local flat = r:contiguous():view(3, per):totable()
      local zeros, dead = 0, 0
      for u = 1, per do
        local alive = false
        for b = 1, 3 do
          if flat[b][u] > 0 then alive = true else zeros = zeros + 1 end
        end
        if not alive then dead = dead + 1 end
      end
      lu.assertAlmostEquals(sig[l].zero_frac, zeros / (3 * per), 1e-9)
      lu.assertAlmostEquals(sig[l].dead_frac, dead / per, 1e-9)
    end
  end
  lu.assertTrue(sig[2].dead_frac > sig[1].dead_frac)
end

-- made-up results: kaiming (no source) and rule X (source s), lrs 0.01 and 0.02, 3 seeds
local function made_up()
  local specs, done = {}, {}
  local acc = {
    -- label, lr, seed -> {val, test} (nil: diverged)
    ['kaiming_normal|0.01'] = {{0.90, 0.91}, {0.92, 0.93}, {0.94, 0.95}},
    ['kaiming_normal|0.02'] = {{0.80, 0.99}, {0.80, 0.99}, {0.80, 0.99}}, -- best test, worse val
    ['X|0.01'] = {{0.95, 0.92}, {0.95, 0.96}, false},
    ['X|0.02'] = {{0.99, 0.50}, false, false},                           -- diverges twice
  }
  for _, label in ipairs{'kaiming_normal', 'X'} do
    for _, lr in ipairs{0.01, 0.02} do
      for seed = 1, 3 do
        local s = {id = string.format('mnist|%s|%g|%d', label, lr, seed), target = 'mnist',
          label = label, source = label == 'X' and 's' or '-', lr = lr, seed = seed}
        specs[#specs + 1] = s
        local a = acc[label .. '|' .. lr][seed]
        done[s.id] = a and {seed = seed, val_acc = a[1], test_acc = a[2], acc_epoch1 = 0.5,
          diverged = false, corr_init_final = {0.9, 0.8}} or {seed = seed, diverged = true}
      end
    end
  end
  return specs, done
end

function TestStudy:test_summary_picks_the_rate_on_held_out_data_and_pairs_seeds()
  local specs, done = made_up()
  local cells = study.summarize(specs, done)
  lu.assertEquals(#cells, 2)
  local k, x = cells[1], cells[2]
  -- kaiming: 0.01 has the better held-out mean (0.92 vs 0.80), though 0.02 tests better
  lu.assertEquals(k.best_lr, 0.01)
  lu.assertAlmostEquals(k.test.mean, 0.93, 1e-12)
  lu.assertAlmostEquals(k.test.sd, 0.02, 1e-12)
  -- X: 0.01 mean val (0.95 + 0.95 + 0) / 3 = 0.633 beats 0.02's 0.99 / 3 = 0.33
  lu.assertEquals(x.best_lr, 0.01)
  lu.assertEquals(x.n, 3)
  lu.assertEquals(x.diverged, 1)
  lu.assertEquals(x.lrs[2].diverged, 2)
  -- pairs: seeds 1 and 2 (seed 3 of X diverged): diffs 0.92 - 0.91, 0.96 - 0.93
  lu.assertEquals(x.diff.n, 2)
  lu.assertAlmostEquals(x.diff.mean, 0.02, 1e-12)
  local sd = math.sqrt(((0.01 - 0.02) ^ 2 + (0.03 - 0.02) ^ 2) / 1)
  lu.assertAlmostEquals(x.diff.sd, sd, 1e-12)
  lu.assertAlmostEquals(x.diff.high - x.diff.mean, 12.706204736174707 * sd / math.sqrt(2), 1e-9)
  lu.assertNil(k.diff) -- the baseline is not compared with itself
  local t = study.table(cells, 'note')
  lu.assertStrContains(t.markdown, '| mnist | X | s | 0.01 | 94.00 ± 2.83 | +2.00 [')
  lu.assertStrContains(t.markdown, 'diverged 1/3')
  lu.assertStrContains(t.csv, 'mnist,kaiming_normal,-,0.01,3,0,93.00,2.00,3,92.00,,,,0,50.00,0.9000,0.8000')
  -- select_seeds = 1: the rate is chosen on seed 1 alone - X's seed 1 is better at 0.02
  local x1 = study.summarize(specs, done, {select_seeds = 1})[2]
  lu.assertEquals(x1.best_lr, 0.02)
  lu.assertEquals(x1.diverged, 2)
  local lr = study.lr_table(cells)
  lu.assertStrContains(lr, 'mnist,X,s,0.02,33.00,50.00,3,1,2,0')
end

function TestStudy:test_one_run_prints_no_zero_spread()
  local specs, done = made_up()
  -- keep seed 1 only: n = 1 everywhere
  local keep = {}
  for _, s in ipairs(specs) do if s.seed == 1 then keep[#keep + 1] = s end end
  local t = study.table(study.summarize(keep, done))
  lu.assertNil(t.markdown:find('± 0.00', 1, true), t.markdown)
  lu.assertStrContains(t.markdown, '91.00 (n=1)')
  lu.assertStrContains(t.markdown, '| 0.02 | 50.00 (n=1) | -41.00 (n=1) |') -- X's seed 1 is best at 0.02
end
