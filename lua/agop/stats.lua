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
--   stats.bootstrap(n, replicates, gen, statistic [, level])
--                                        -- percentile interval of statistic(counts)
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

--- Percentile bootstrap: `replicates` times, draws counts = stats.resample(gen, n) and
--- evaluates statistic(counts) (a number, or a list of numbers: one interval each).
--- Returns {low, high, values} (or a list of those), level defaulting to 0.95.
function stats.bootstrap(n, replicates, gen, statistic, level)
  level = level or 0.95
  local vals, multi = {}, false
  for r = 1, replicates do
    local v = statistic(stats.resample(gen, n))
    if type(v) == 'table' then
      multi = true
      for j, x in pairs(v) do
        vals[j] = vals[j] or {}
        vals[j][r] = x
      end
    else
      vals[r] = v
    end
  end
  local function ci(xs)
    return {low = stats.percentile(xs, (1 - level) / 2),
            high = stats.percentile(xs, 1 - (1 - level) / 2), values = xs}
  end
  if not multi then return ci(vals) end
  local out = {}
  for j, xs in pairs(vals) do out[j] = ci(xs) end
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
