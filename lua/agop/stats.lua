-- agop.stats: the statistics the studies report - mean and standard deviation over
-- seeds, Student-t intervals on paired differences, percentile bootstrap intervals, and
-- the Pearson correlation over a matrix's off-diagonal entries.
--
--   stats.mean_std({x...})               -- mean, sample std (n - 1), n (NaNs skipped)
--   stats.t_quantile(p, df)              -- Student-t quantile, e.g. (0.975, 4) = 2.776
--   stats.t_interval({x...} [, level])   -- {mean, low, high, sd, n}: mean +- t * sd / sqrt(n)
--   stats.paired({[k] = a}, {[k] = b})   -- {a_k - b_k} over the keys both have, in key order
--   stats.percentile(xs, q)              -- q in [0, 1], linear interpolation (NumPy's default)
--   stats.resample(gen, n)               -- counts c_1..c_n of n draws with replacement
--   stats.bootstrap(n, replicates, gen, statistic [, level [, method]])
--                                        -- percentile or BCa interval of statistic(counts)
--   stats.norm_cdf(x), stats.norm_quantile(p) -- the standard normal's Φ and Φ⁻¹
--   stats.corr_offdiag(A, B)             -- Pearson over the entries i ~= j of d x d A, B
--   stats.pm(mean, sd, n [, fmt])        -- '1.23 ± 0.45', '1.23 (n=1)' or '-'
local agop = require('agop')

local stats = {}
local fmt = string.format

--- Mean, sample standard deviation (n - 1 in the denominator; nil when n < 2) and the
--- number of values, skipping NaNs (and nils in a list with holes up to #xs).
function stats.mean_std(xs)
  local n, s = 0, 0
  for i = 1, #xs do
    local x = xs[i]
    if x ~= nil and x == x then n, s = n + 1, s + x end
  end
  if n == 0 then return nil, nil, 0 end
  local m = s / n
  if n == 1 then return m, nil, 1 end
  local ss = 0
  for i = 1, #xs do
    local x = xs[i]
    if x ~= nil and x == x then ss = ss + (x - m) ^ 2 end
  end
  return m, math.sqrt(ss / (n - 1)), n
end

-- log Gamma(x), x > 0 (Lanczos, g = 7, 9 terms: ~1e-15 relative)
local LANCZOS = {0.99999999999980993, 676.5203681218851, -1259.1392167224028,
  771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
  9.9843695780195716e-6, 1.5056327351493116e-7}
local function lgamma(x)
  if x < 0.5 then return math.log(math.pi / math.abs(math.sin(math.pi * x))) - lgamma(1 - x) end
  x = x - 1
  local a = LANCZOS[1]
  local t = x + 7.5
  for i = 1, 8 do a = a + LANCZOS[i + 1] / (x + i) end
  return 0.5 * math.log(2 * math.pi) + (x + 0.5) * math.log(t) - t + math.log(a)
end
stats.lgamma = lgamma

-- Continued fraction of the incomplete beta function (modified Lentz).
local function betacf(a, b, x)
  local tiny = 1e-300
  local qab, qap, qam = a + b, a + 1, a - 1
  local c, d = 1, 1 - qab * x / qap
  if math.abs(d) < tiny then d = tiny end
  d = 1 / d
  local h = d
  for m = 1, 1000 do
    local m2 = 2 * m
    local aa = m * (b - m) * x / ((qam + m2) * (a + m2))
    d = 1 + aa * d; if math.abs(d) < tiny then d = tiny end
    c = 1 + aa / c; if math.abs(c) < tiny then c = tiny end
    d = 1 / d
    h = h * d * c
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
    d = 1 + aa * d; if math.abs(d) < tiny then d = tiny end
    c = 1 + aa / c; if math.abs(c) < tiny then c = tiny end
    d = 1 / d
    local del = d * c
    h = h * del
    if math.abs(del - 1) < 1e-15 then break end
  end
  return h
end

--- The regularized incomplete beta function I_x(a, b).
function stats.betainc(x, a, b)
  if x <= 0 then return 0 end
  if x >= 1 then return 1 end
  local lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * math.log(x) + b * math.log(1 - x)
  if x < (a + 1) / (a + b + 2) then return math.exp(lbt) * betacf(a, b, x) / a end
  return 1 - math.exp(lbt) * betacf(b, a, 1 - x) / b
end

--- P(T <= t) for Student's t with df degrees of freedom.
function stats.t_cdf(t, df)
  local tail = 0.5 * stats.betainc(df / (df + t * t), df / 2, 0.5)
  return t >= 0 and 1 - tail or tail
end

--- The p-quantile of Student's t with df > 0 degrees of freedom (bisection on t_cdf).
function stats.t_quantile(p, df)
  if not (p > 0 and p < 1) then error(fmt('stats.t_quantile: p must be in (0, 1), got %s', tostring(p)), 0) end
  if not (df > 0) then error(fmt('stats.t_quantile: df must be > 0, got %s', tostring(df)), 0) end
  if p < 0.5 then return -stats.t_quantile(1 - p, df) end
  local lo, hi = 0, 1
  while stats.t_cdf(hi, df) < p do lo, hi = hi, hi * 2 end
  for _ = 1, 200 do
    local mid = 0.5 * (lo + hi)
    if stats.t_cdf(mid, df) < p then lo = mid else hi = mid end
    if hi - lo <= 1e-14 * hi then break end
  end
  return 0.5 * (lo + hi)
end

--- Student-t confidence interval of the mean of xs (NaNs skipped):
--- {mean, low, high, sd, n, half}; low/high/sd/half are nil when n < 2.
function stats.t_interval(xs, level)
  level = level or 0.95
  local m, sd, n = stats.mean_std(xs)
  local r = {mean = m, sd = sd, n = n}
  if n >= 2 then
    r.half = stats.t_quantile(1 - (1 - level) / 2, n - 1) * sd / math.sqrt(n)
    r.low, r.high = m - r.half, m + r.half
  end
  return r
end

--- Paired differences a[k] - b[k] over the keys present (and not NaN) in both, in sorted
--- key order; also returns the keys.
function stats.paired(a, b)
  local keys = {}
  for k, v in pairs(a) do
    if b[k] ~= nil and v == v and b[k] == b[k] then keys[#keys + 1] = k end
  end
  table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  local d = {}
  for i, k in ipairs(keys) do d[i] = a[k] - b[k] end
  return d, keys
end

--- The q-quantile (q in [0, 1]) of the values xs, linearly interpolated between order
--- statistics (NumPy's default, 'linear').
function stats.percentile(xs, q)
  local s = {}
  for i = 1, #xs do s[i] = xs[i] end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  local h = (n - 1) * q + 1
  local lo = math.floor(h)
  if lo >= n then return s[n] end
  return s[lo] + (h - lo) * (s[lo + 1] - s[lo])
end

--- Counts c_1..c_n (summing to n) of n draws with replacement from 1..n.
function stats.resample(gen, n)
  local c = {}
  for i = 1, n do c[i] = 0 end
  for _ = 1, n do
    local i = gen:random(n)
    c[i] = c[i] + 1
  end
  return c
end

--- Φ(x), the standard normal distribution function: erfc by its Chebyshev fit
--- (Numerical Recipes' erfcc, relative error < 1.2e-7 everywhere).
function stats.norm_cdf(x)
  local z = math.abs(x) / math.sqrt(2)
  local t = 1 / (1 + 0.5 * z)
  local r = t * math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t *
    (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t *
    (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
  return x >= 0 and 1 - 0.5 * r or 0.5 * r
end

--- Φ⁻¹(p) for p in (0, 1): Acklam's rational approximation (relative error < 1.2e-9).
function stats.norm_quantile(p)
  if not (p > 0 and p < 1) then
    error(fmt('stats.norm_quantile: p must be in (0, 1), got %s', tostring(p)), 2)
  end
  local a = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
    1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00}
  local b = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
    6.680131188771972e+01, -1.328068155288572e+01}
  local c = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
    -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00}
  local d = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
    3.754408661907416e+00}
  local function tail(q)
    return (((((c[1] * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) * q + c[6]) /
      ((((d[1] * q + d[2]) * q + d[3]) * q + d[4]) * q + 1)
  end
  if p < 0.02425 then return tail(math.sqrt(-2 * math.log(p))) end
  if p > 1 - 0.02425 then return -tail(math.sqrt(-2 * math.log(1 - p))) end
  local q = p - 0.5
  local r = q * q
  return (((((a[1] * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * r + a[6]) * q /
    (((((b[1] * r + b[2]) * r + b[3]) * r + b[4]) * r + b[5]) * r + 1)
end

-- The BCa interval (Efron 1987; Efron & Tibshirani 1993, ch. 14) of replicate values xs
-- around the estimate est, with the jackknife values jk (leave one unit out) giving the
-- acceleration. The bias correction z0 = Φ⁻¹(share of replicates below est, ties counted
-- half) moves both ends: a bootstrap distribution that sits below the estimate (as a
-- correlation's does, resampling repeats images and so adds noise) no longer drags the
-- interval below it. z0 is kept finite (share within [1/2R, 1 - 1/2R]).
local function bca(xs, est, jk, level)
  local below, m = 0, #xs
  for i = 1, m do
    if xs[i] < est then below = below + 1 elseif xs[i] == est then below = below + 0.5 end
  end
  local share = math.min(math.max(below / m, 0.5 / m), 1 - 0.5 / m)
  local z0 = stats.norm_quantile(share)
  local jm = 0
  for i = 1, #jk do jm = jm + jk[i] end
  jm = jm / #jk
  local s2, s3 = 0, 0
  for i = 1, #jk do
    local u = jm - jk[i]
    s2, s3 = s2 + u * u, s3 + u * u * u
  end
  local accel = s2 > 0 and s3 / (6 * s2 ^ 1.5) or 0
  local function at(alpha)
    local z = stats.norm_quantile(alpha)
    return stats.norm_cdf(z0 + (z0 + z) / (1 - accel * (z0 + z)))
  end
  local qlo, qhi = at((1 - level) / 2), at(1 - (1 - level) / 2)
  return {low = stats.percentile(xs, qlo), high = stats.percentile(xs, qhi), values = xs,
          estimate = est, z0 = z0, accel = accel, q_low = qlo, q_high = qhi}
end

--- Bootstrap: `replicates` times, draws counts = stats.resample(gen, n) and evaluates
--- statistic(counts) (a number, or a table of numbers: one interval each). Returns
--- {low, high, values} (or a table of those), level defaulting to 0.95.
--- method 'percentile' (the default): the replicates' quantiles. method 'bca': bias-
--- corrected and accelerated; it also evaluates statistic at all counts 1 (the estimate,
--- returned as `estimate`) and at the n jackknife counts (one unit left out), and
--- returns z0 and accel too.
function stats.bootstrap(n, replicates, gen, statistic, level, method)
  level, method = level or 0.95, method or 'percentile'
  if method ~= 'percentile' and method ~= 'bca' then
    error(fmt("stats.bootstrap: method must be 'percentile' or 'bca', got %s",
      tostring(method)), 2)
  end
  local function collect(into, r, v)
    if type(v) == 'table' then
      for j, x in pairs(v) do
        into[j] = into[j] or {}
        into[j][r] = x
      end
      return true
    end
    into[r] = v
    return false
  end
  local vals, multi = {}, false
  for r = 1, replicates do multi = collect(vals, r, statistic(stats.resample(gen, n))) end
  local est, jk = {}, {}
  if method == 'bca' then
    local ones = {}
    for i = 1, n do ones[i] = 1 end
    collect(est, 1, statistic(ones))
    for i = 1, n do
      ones[i] = 0
      collect(jk, i, statistic(ones))
      ones[i] = 1
    end
  end
  local function ci(xs, e, j)
    if method == 'bca' then return bca(xs, e[1], j, level) end
    return {low = stats.percentile(xs, (1 - level) / 2),
            high = stats.percentile(xs, 1 - (1 - level) / 2), values = xs}
  end
  if not multi then return ci(vals, est, jk) end
  local out = {}
  for j, xs in pairs(vals) do out[j] = ci(xs, est[j], jk[j]) end
  return out
end

--- Pearson correlation over the off-diagonal entries (i ~= j) of two d x d tensors.
--- The d(d-1) entries are gathered without a loop: in the row-major array the diagonal
--- sits every d + 1 entries, so entries 2..d^2 viewed as (d - 1) x (d + 1) hold the
--- diagonal in their last column.
function stats.corr_offdiag(a, b)
  for i, m in ipairs{a, b} do
    if not agop.is_tensor(m) or m:dim() ~= 2 or m:size(1) ~= m:size(2) or m:size(1) < 2 then
      error(fmt('stats.corr_offdiag: argument #%d must be a d x d tensor with d >= 2', i), 0)
    end
  end
  local d = a:size(1)
  if b:size(1) ~= d then
    error(fmt('stats.corr_offdiag: sizes differ: %dx%d vs %dx%d', d, d, b:size(1), b:size(1)), 0)
  end
  local function off(m)
    return m:contiguous():view(d * d):narrow(1, 2, d * d - 1):view(d - 1, d + 1)
      :narrow(2, 1, d):contiguous()
  end
  return agop.corr(off(a), off(b))
end

--- 'mean ± sd' with format f (default '%.2f'); 'mean (n=1)' when there is one value;
--- '-' when there is none. Never prints '± 0.00' for a single run.
function stats.pm(m, sd, n, f)
  f = f or '%.2f'
  if m == nil or n == 0 then return '-' end
  if n == 1 or sd == nil then return fmt(f .. ' (n=1)', m) end
  return fmt(f .. ' ± ' .. f, m, sd)
end

return stats
