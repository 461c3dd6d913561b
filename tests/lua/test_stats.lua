-- agop.stats against values computed independently: NumPy (the code that made each
-- number is in the comment above it), numerical integration of the t density, and brute
-- force.
local lu = require('luaunit')
local agop = require('agop')
local stats = require('agop.stats')

TestStats = {}

function TestStats:test_t_quantiles_match_integrated_density()
  -- Python (no SciPy): bisection on the t CDF integrated by Simpson's rule,
  --   pdf = exp(lgamma((v+1)/2) - lgamma(v/2)) / sqrt(v pi) * (1 + t^2/v)^(-(v+1)/2)
  -- 0.975-quantiles for v = 1, 2, 4, 9, 29 (also the textbook table values):
  local want = {[1] = 12.706204736174707, [2] = 4.302652729749464, [4] = 2.7764451051977987,
    [9] = 2.2621571627409915, [29] = 2.045229642132703}
  for v, q in pairs(want) do
    lu.assertAlmostEquals(stats.t_quantile(0.975, v), q, 1e-8 * q, 'df ' .. v)
    lu.assertAlmostEquals(stats.t_quantile(0.025, v), -q, 1e-8 * q, 'df ' .. v)
  end
  -- the same integration: P(T <= 1.5) for v = 4 is 0.896 (exactly 0.896 in closed form)
  lu.assertAlmostEquals(stats.t_cdf(1.5, 4), 0.896, 1e-12)
  lu.assertAlmostEquals(stats.t_cdf(1.5, 9), 0.9160746719714676, 1e-9)
  lu.assertAlmostEquals(stats.t_cdf(0, 3), 0.5, 1e-15)
  -- large df tends to the normal quantile 1.959964
  lu.assertAlmostEquals(stats.t_quantile(0.975, 1e6), 1.959964, 1e-5)
  lu.assertErrorMsgContains('p must be in (0, 1)', stats.t_quantile, 1, 3)
end

function TestStats:test_t_interval_of_paired_differences_matches_numpy()
  -- d = np.array([0.3, -0.1, 0.5, 0.2, 0.4]); d.mean(); d.std(ddof=1)
  -- d.mean() - 2.7764451051977987 * d.std(ddof=1) / np.sqrt(5)
  local a = {s1 = 0.9, s2 = 0.5, s3 = 1.1, s4 = 0.8, s5 = 1.0, s6 = 0.7}
  local b = {s1 = 0.6, s2 = 0.6, s3 = 0.6, s4 = 0.6, s5 = 0.6, s7 = 0.1}
  local d, keys = stats.paired(a, b)
  lu.assertEquals(keys, {'s1', 's2', 's3', 's4', 's5'}) -- s6, s7 have no partner
  local r = stats.t_interval(d)
  lu.assertEquals(r.n, 5)
  lu.assertAlmostEquals(r.mean, 0.26, 1e-12)
  lu.assertAlmostEquals(r.sd, 0.23021728866442678, 1e-12)
  lu.assertAlmostEquals(r.low, -0.025852519098702842, 1e-9)
  lu.assertAlmostEquals(r.high, 0.26 + (0.26 + 0.025852519098702842), 1e-9)
  -- one value: a mean, no interval, and no '± 0.00'
  local one = stats.t_interval({0.4})
  lu.assertEquals(one.n, 1)
  lu.assertNil(one.low)
  lu.assertEquals(stats.pm(one.mean, one.sd, one.n), '0.40 (n=1)')
  lu.assertEquals(stats.pm(nil, nil, 0), '-')
  lu.assertEquals(stats.pm(1.5, 0.25, 3), '1.50 ± 0.25')
  -- NaNs are skipped
  local m, sd, n = stats.mean_std({1, 0 / 0, 3})
  lu.assertEquals({m, n}, {2, 2})
  lu.assertAlmostEquals(sd, math.sqrt(2), 1e-15)
end

function TestStats:test_percentile_matches_numpy_linear()
  -- x = np.array([3.1, 2.4, 5.0, 4.4, 3.9, 1.2, 7.5])
  -- np.percentile(x, 2.5), np.percentile(x, 97.5), np.percentile(x, 50)
  local x = {3.1, 2.4, 5.0, 4.4, 3.9, 1.2, 7.5}
  lu.assertAlmostEquals(stats.percentile(x, 0.025), 1.38, 1e-12)
  lu.assertAlmostEquals(stats.percentile(x, 0.975), 7.124999999999999, 1e-12)
  lu.assertAlmostEquals(stats.percentile(x, 0.5), 3.9, 1e-12)
  lu.assertEquals(stats.percentile(x, 1), 7.5)
  lu.assertEquals(stats.percentile(x, 0), 1.2)
end

function TestStats:test_corr_offdiag_matches_numpy()
  -- A, B as below; m = ~np.eye(4, dtype=bool)
  -- np.corrcoef(A[m], B[m])[0, 1], np.corrcoef(A.ravel(), B.ravel())[0, 1]
  local A = agop.from_table({4, 1, -2, 0.5, 1, 3, 0.25, -1, -2, 0.25, 5, 2, 0.5, -1, 2, 1}, 4, 4)
  local B = agop.from_table({2, 0.5, -1, 1, 0.5, 1, 1, -2, -1, 1, 3, 0.5, 1, -2, 0.5, 4}, 4, 4)
  lu.assertAlmostEquals(stats.corr_offdiag(A, B), 0.7139215614635323, 1e-6)
  lu.assertAlmostEquals(agop.corr(A, B), 0.7023895140507999, 1e-6)
  -- a transposed (non-contiguous) view gives the same (the matrices are symmetric)
  lu.assertAlmostEquals(stats.corr_offdiag(A:t(), B), 0.7139215614635323, 1e-6)
  -- brute force on a random 37 x 37 pair: a plain loop over i ~= j
  local g = agop.Generator(4)
  local X, Y = agop.randn(g, 37, 37), agop.randn(g, 37, 37)
  Y = Y + X * 0.5
  local xs, ys = X:totable(), Y:totable()
  local sx, sy, n = 0, 0, 0
  for i = 1, 37 do for j = 1, 37 do
    if i ~= j then sx, sy, n = sx + xs[i][j], sy + ys[i][j], n + 1 end
  end end
  local mx, my, sxy, sxx, syy = sx / n, sy / n, 0, 0, 0
  for i = 1, 37 do for j = 1, 37 do
    if i ~= j then
      local a, b = xs[i][j] - mx, ys[i][j] - my
      sxy, sxx, syy = sxy + a * b, sxx + a * a, syy + b * b
    end
  end end
  lu.assertAlmostEquals(stats.corr_offdiag(X, Y), sxy / math.sqrt(sxx * syy), 1e-9)
  lu.assertErrorMsgContains('must be a d x d tensor', stats.corr_offdiag, agop.zeros(3, 4), A)
  lu.assertErrorMsgContains('sizes differ', stats.corr_offdiag, A, agop.zeros(3, 3))
end

function TestStats:test_normal_cdf_and_quantile_match_known_values()
  -- reference values: Φ(1.959963984540054) = 0.975, Φ(-3) = 0.0013498980316301,
  -- Φ(1) = 0.8413447460685429, Φ⁻¹(1e-6) = -4.753424308822899
  lu.assertAlmostEquals(stats.norm_cdf(0), 0.5, 1e-7)
  lu.assertAlmostEquals(stats.norm_cdf(1.959963984540054), 0.975, 1e-7)
  lu.assertAlmostEquals(stats.norm_cdf(-3), 0.0013498980316301, 2e-10)
  lu.assertAlmostEquals(stats.norm_cdf(1), 0.8413447460685429, 1e-7)
  lu.assertAlmostEquals(stats.norm_quantile(0.975), 1.959963984540054, 1e-8)
  lu.assertAlmostEquals(stats.norm_quantile(0.5), 0, 1e-12)
  lu.assertAlmostEquals(stats.norm_quantile(1e-6), -4.753424308822899, 1e-7)
  lu.assertAlmostEquals(stats.norm_quantile(1 - 0.01), 2.326347874040841, 1e-8)
  for _, p in ipairs{0.001, 0.02, 0.3, 0.7, 0.99} do
    lu.assertAlmostEquals(stats.norm_cdf(stats.norm_quantile(p)), p, 2e-7 * math.max(p, 0.01))
  end
  lu.assertErrorMsgContains('p must be in (0, 1)', stats.norm_quantile, 1)
  lu.assertErrorMsgContains("method must be 'percentile' or 'bca'", stats.bootstrap, 3, 2,
    agop.Generator(1), function() return 0 end, 0.95, 'basic')
end

function TestStats:test_bca_of_the_mean_has_the_textbook_acceleration_and_bias()
  -- for the sample mean, the jackknife acceleration has a closed form,
  -- a = sum (x_i - m)^3 / (6 (sum (x_i - m)^2)^1.5), and z0 = Φ⁻¹(share below the mean)
  local x = {0.2, 0.3, 0.1, 0.4, 0.2, 5.0, 0.3, 0.6, 2.5, 0.1, 0.2, 0.9}
  local n, m = #x, 0
  for i = 1, n do m = m + x[i] / n end
  local s2, s3 = 0, 0
  for i = 1, n do s2, s3 = s2 + (x[i] - m) ^ 2, s3 + (x[i] - m) ^ 3 end
  local function mean(c)
    local s, k = 0, 0
    for i = 1, n do s, k = s + c[i] * x[i], k + c[i] end
    return s / k
  end
  local R = 2000
  local ci = stats.bootstrap(n, R, agop.Generator(4), mean, 0.95, 'bca')
  lu.assertAlmostEquals(ci.estimate, m, 1e-12)
  lu.assertAlmostEquals(ci.accel, s3 / (6 * s2 ^ 1.5), 1e-12)
  lu.assertTrue(ci.accel > 0.05) -- right-skewed data
  local below = 0
  for r = 1, R do -- ties (a resample that swaps equal values) count half
    local v, e = ci.values[r], ci.estimate
    if v < e then below = below + 1 elseif v == e then below = below + 0.5 end
  end
  lu.assertAlmostEquals(ci.z0, stats.norm_quantile(below / R), 1e-9)
  -- the adjusted levels, then the same interpolated quantiles as the percentile method
  local function level(z) return stats.norm_cdf(ci.z0 + (ci.z0 + z) / (1 - ci.accel * (ci.z0 + z))) end
  lu.assertAlmostEquals(ci.q_low, level(-1.959963984540054), 1e-6)
  lu.assertAlmostEquals(ci.high, stats.percentile(ci.values, ci.q_high), 1e-12)
  -- skewed data: BCa moves both ends up against the percentile interval (same draws)
  local pc = stats.bootstrap(n, R, agop.Generator(4), mean)
  lu.assertTrue(ci.low > pc.low and ci.high > pc.high)
  lu.assertTrue(ci.low < m and m < ci.high)
end

function TestStats:test_bca_recentres_a_replicate_distribution_that_sits_below_the_estimate()
  -- a statistic whose resamples are biased low (the number of distinct units drawn, as a
  -- share): every replicate is below the estimate 1, so the percentile interval excludes
  -- it; BCa's bias correction takes the top of the replicates instead
  local n = 20
  local function distinct(c)
    local k = 0
    for i = 1, n do if c[i] > 0 then k = k + 1 end end
    local total = 0
    for i = 1, n do total = total + c[i] end
    return k / total
  end
  local pc = stats.bootstrap(n, 300, agop.Generator(3), distinct)
  local ci = stats.bootstrap(n, 300, agop.Generator(3), distinct, 0.95, 'bca')
  lu.assertTrue(pc.high < 1)
  lu.assertEquals(ci.estimate, 1)
  lu.assertTrue(ci.z0 > 2) -- the share below is clamped to 1 - 1/2R
  lu.assertTrue(ci.high >= pc.high and ci.low > pc.low)
end

function TestStats:test_bootstrap_of_the_mean_matches_brute_force()
  -- the percentile bootstrap of a mean, computed from counts, equals resampling the
  -- values themselves with the same draws
  local x = {3.1, 2.4, 5.0, 4.4, 3.9, 1.2, 7.5, 0.3, 2.2}
  local n = #x
  local ci = stats.bootstrap(n, 400, agop.Generator(11), function(c)
    local s = 0
    for i = 1, n do s = s + c[i] * x[i] end
    return s / n
  end)
  local g, means = agop.Generator(11), {}
  for r = 1, 400 do
    local s = 0
    for _ = 1, n do s = s + x[g:random(n)] end
    means[r] = s / n
  end
  lu.assertAlmostEquals(ci.low, stats.percentile(means, 0.025), 1e-12)
  lu.assertAlmostEquals(ci.high, stats.percentile(means, 0.975), 1e-12)
  lu.assertTrue(ci.low < 3.333 and ci.high > 3.333) -- the sample mean is inside
  local total = 0
  for _, c in ipairs(stats.resample(agop.Generator(2), 50)) do total = total + c end
  lu.assertEquals(total, 50)
end
