-- agop.init: a registry of initialization rules for conv (and linear) weights.
--
--   local init = require('agop.init')
--   init.register('half_kaiming', function(w, info, ctx)
--     return w:normal_(0, math.sqrt(1 / info.fan_in), ctx.generator)
--   end, 'Kaiming-normal with half the variance')
--   init.apply(model, 'half_kaiming', {generator = agop.Generator(1)})
--
-- A rule is fn(weight, info, ctx): it fills `weight` in place (or returns a tensor of the
-- same shape). info = {fan_in, fan_out, layer (1-based index among the convs), kind
-- ('conv' | 'linear'), module, shape}; ctx = {generator, source = {nfm = {...}, agop = {...}}
-- (per-layer d x d matrices), source_model, batch (images), model}. init.apply checks
-- what a rule returns: the shape, and that every value is finite.
local agop = require('agop')
local util = require('agop.util')
local check = require('agop.check')

local init = {}
local registry, order = {}, {}

--- Adds (or replaces) a rule.
function init.register(name, fn, doc)
  if type(name) ~= 'string' or not name:match('^[%a_][%w_]*$') then
    error(string.format('init.register: a rule name is an identifier, got %s', tostring(name)), 0)
  end
  if type(fn) ~= 'function' then
    error(string.format("init.register: rule '%s' needs a function, got %s", name, type(fn)), 0)
  end
  if not registry[name] then order[#order + 1] = name end
  registry[name] = {fn = fn, doc = doc or ''}
end

--- The rules in registration order: {{name=, doc=}, ...}.
function init.list()
  local out = {}
  for _, n in ipairs(order) do out[#out + 1] = {name = n, doc = registry[n].doc} end
  return out
end

function init.get(name)
  local r = registry[name]
  if not r then
    local near = util.closest(name, registry)
    error(string.format("init: unknown rule '%s'%s (init.list() shows them)", tostring(name),
      near and string.format(" (did you mean '%s'?)", near) or ''), 0)
  end
  return r.fn
end

local function fans(w)
  local s = w:size()
  local rf = 1
  for i = 3, #s do rf = rf * s[i] end
  return s[2] * rf, s[1] * rf
end

--- The layers a rule applies to: {module=, kind=, layer=} for every conv (and, with
--- opts.linear, every linear) layer of the model, in order.
function init.layers(model, opts)
  local out = {}
  for l, conv in ipairs(model.convs) do out[#out + 1] = {module = conv, kind = 'conv', layer = l} end
  if opts and opts.linear then
    local k = 0
    for _, m in ipairs(model.classifier and model.classifier.modules or {}) do
      if m.weight and m.weight:dim() == 2 then
        k = k + 1
        out[#out + 1] = {module = m, kind = 'linear', layer = k}
      end
    end
  end
  return out
end

--- Applies one layer's rule and checks the result.
function init.apply_layer(fn, name, entry, ctx)
  local w = entry.module.weight
  local fan_in, fan_out = fans(w)
  local info = {fan_in = fan_in, fan_out = fan_out, layer = entry.layer, kind = entry.kind,
    module = entry.module, shape = w:size()}
  local r = fn(w, info, ctx)
  if r ~= nil and r ~= w then
    if not agop.is_tensor(r) then
      error(string.format("init: rule '%s' returned %s for layer %d (a tensor or nothing expected)",
        name, type(r), entry.layer), 0)
    end
    if not check.same_size(r, w) then
      error(string.format("init: rule '%s' returned a %s tensor for layer %d, whose weight is %s",
        name, check.shape(r), entry.layer, check.shape(w)), 0)
    end
    w:copy(r)
  end
  if not w:isfinite() then
    error(string.format("init: rule '%s' produced non-finite values in layer %d", name, entry.layer), 0)
  end
  if entry.module.bias and ctx.bias ~= 'keep' then entry.module.bias:zero() end
end

--- Applies `rule` (a name) to one module with a weight (a conv or linear layer): how nn's
--- layers and models take their initial weights. ctx = {generator = g or nil (the
--- default generator)}; the rule's draws are exactly those init.apply would make.
function init.module(m, rule, ctx)
  ctx = ctx or {}
  local kind = m.weight:dim() == 2 and 'linear' or 'conv'
  init.apply_layer(init.get(rule), rule, {module = m, kind = kind, layer = ctx.layer or 1}, ctx)
  return m
end

--- Applies `rule` (a name, or a function) to every conv layer of `model` (and its linear
--- layers with opts.linear). ctx.generator defaults to agop.Generator(ctx.seed or 0).
--- Biases are set to 0 unless ctx.bias == 'keep'. Returns the model.
function init.apply(model, rule, ctx, opts)
  ctx = ctx or {}
  ctx.generator = ctx.generator or agop.Generator(ctx.seed or 0)
  ctx.model = model
  local name = type(rule) == 'string' and rule or 'custom'
  local fn = type(rule) == 'function' and rule or init.get(rule)
  for _, entry in ipairs(init.layers(model, opts)) do init.apply_layer(fn, name, entry, ctx) end
  return model
end

-- ------------------------------------------------------------------------------------
-- helpers for covariance rules

--- Eigen-decomposition of a symmetric matrix with its eigenvalues transformed by
--- `f(lambdas)` (a Lua list -> list); returns the factor L with L L^T = V f(Λ) V^T.
local function factor(M, f)
  local vals, vecs = M:eig()
  local lam = f(vals:totable())
  local d = #lam
  local s = agop.zeros(d)
  for i = 1, d do s[i] = math.sqrt(math.max(lam[i], 0)) end
  return vecs * s -- scales column i of V by sqrt(lambda_i)
end

--- Shifts eigenvalues as the seed study did: when the smallest is <= 0, adds
--- |lambda_min| + 1e-6 to every eigenvalue.
function init.shift(lam)
  local mn = math.huge
  for _, v in ipairs(lam) do mn = math.min(mn, v) end
  if mn <= 0 then
    local out = {}
    for i, v in ipairs(lam) do out[i] = v + math.abs(mn) + 1e-6 end
    return out
  end
  return lam
end

--- Clips negative eigenvalues to 0.
function init.clip(lam)
  local out = {}
  for i, v in ipairs(lam) do out[i] = math.max(v, 0) end
  return out
end

local function trace(M)
  local s = 0
  for i = 1, M:size(1) do s = s + M:get(i, i) end
  return s
end

--- Fills w (c_out x d, any shape with c_out first) with rows drawn i.i.d. from N(0, Σ),
--- Σ = scale * V f(Λ) V^T.
function init.draw_rows(w, M, f, scale, gen)
  local cout = w:size(1)
  local d = w:numel() // cout
  if M:size(1) ~= d then
    error(string.format('init: a %dx%d source matrix does not fit filters of %d entries', M:size(1), M:size(2), d), 0)
  end
  local L = factor(M, f)
  local z = agop.randn(gen, cout, d)
  local rows = z:mm(L:t()) * math.sqrt(scale)
  w:copy(rows:view(w:size()))
  return w
end

--- The source matrix of a kind ('nfm' or 'agop') for a layer, from ctx.source or from
--- ctx.source_model (nfm only).
function init.source(ctx, kind, layer)
  local s = ctx.source and ctx.source[kind] and ctx.source[kind][layer]
  if s then return s end
  if kind == 'nfm' and ctx.source_model then
    return require('agop.features').nfm(ctx.source_model.convs[layer])
  end
  error(string.format("init: no %s source matrix for layer %d (give ctx.source.%s or ctx.source_model)",
    kind, layer, kind), 0)
end

-- sqrt of AGOP sources is cached per matrix
local sqrt_cache = setmetatable({}, {__mode = 'k'})
local function agop_sqrt(ctx, layer)
  local G = init.source(ctx, 'agop', layer)
  if not sqrt_cache[G] then sqrt_cache[G] = G:matpow(0.5) end
  return sqrt_cache[G]
end

-- ------------------------------------------------------------------------------------
-- baselines

local function gain(nl, a)
  if nl == 'relu' then return math.sqrt(2) end
  if nl == 'leaky_relu' then return math.sqrt(2 / (1 + (a or 0.01) ^ 2)) end
  if nl == 'tanh' then return 5 / 3 end
  return 1
end
init.gain = gain

init.register('normal', function(w, _, ctx)
  return w:normal_(0, ctx.std or 0.01, ctx.generator)
end, 'N(0, std^2), std = ctx.std (default 0.01)')

init.register('uniform', function(w, _, ctx)
  local a = ctx.a or 0.05
  return w:uniform_(-a, a, ctx.generator)
end, 'U(-a, a), a = ctx.a (default 0.05)')

init.register('xavier_normal', function(w, info, ctx)
  return w:normal_(0, math.sqrt(2 / (info.fan_in + info.fan_out)), ctx.generator)
end, 'Glorot: N(0, 2 / (fan_in + fan_out))')

init.register('xavier_uniform', function(w, info, ctx)
  local a = math.sqrt(6 / (info.fan_in + info.fan_out))
  return w:uniform_(-a, a, ctx.generator)
end, 'Glorot: U(-a, a), a = sqrt(6 / (fan_in + fan_out))')

local function kaiming_std(info, ctx)
  local fan = (ctx.mode or 'fan_in') == 'fan_in' and info.fan_in or info.fan_out
  return gain(ctx.nonlinearity or 'relu', ctx.a) / math.sqrt(fan)
end

init.register('kaiming_normal', function(w, info, ctx)
  return w:normal_(0, kaiming_std(info, ctx), ctx.generator)
end, 'He: N(0, gain^2 / fan), ctx.mode fan_in|fan_out, ctx.nonlinearity (relu)')

init.register('kaiming_uniform', function(w, info, ctx)
  local b = math.sqrt(3) * kaiming_std(info, ctx)
  return w:uniform_(-b, b, ctx.generator)
end, 'He: U(-b, b), b = gain * sqrt(3 / fan)')

init.register('orthogonal', function(w, info, ctx)
  local rows, cols = w:size(1), w:numel() // w:size(1)
  local n = math.max(rows, cols)
  local a = agop.randn(ctx.generator, n, n)
  local sym = a:mm(a:t())
  local _, q = sym:eig() -- orthonormal columns
  local r = q:narrow(1, 1, rows):narrow(2, 1, cols)
  if rows > cols then r = q:narrow(1, 1, rows):narrow(2, 1, cols) end
  w:copy(r:contiguous():view(w:size()) * (ctx.gain or 1))
  return w
end, 'rows (or columns) orthonormal, times ctx.gain')

init.register('torch_default', function(w, info, ctx)
  local b = 1 / math.sqrt(info.fan_in) -- kaiming_uniform(a = sqrt(5)) gives this bound
  w:uniform_(-b, b, ctx.generator)
  if info.module.bias then info.module.bias:uniform_(-b, b, ctx.generator) end
  ctx.bias = 'keep'
  return w
end, "PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias")

init.register('vgg_kaiming', function(w, info, ctx)
  return w:normal_(0, math.sqrt(2 / info.fan_in), ctx.generator)
end, "models.vgg11's init = 'kaiming': N(0, 2 / fan_in) (std as sqrt(2 / fan_in)), bias 0")

-- ------------------------------------------------------------------------------------
-- covariance rules: each filter (row) drawn i.i.d. from N(0, Σ), Σ = scale · V f(Λ) Vᵀ
-- with M = V Λ Vᵀ a source matrix. init.covariances[name](info, ctx) -> M, f, scale.

init.covariances = {}

local function cov_rule(name, cov, doc)
  init.covariances[name] = cov
  init.register(name, function(w, info, ctx)
    local M, f, scale = cov(info, ctx, w)
    return init.draw_rows(w, M, f, scale, ctx.generator)
  end, doc)
end

-- the seed study's rules, exactly as it defined them

cov_rule('nfm', function(info, ctx)
  local N = init.source(ctx, 'nfm', info.layer)
  return N, init.shift, 1 / trace(N)
end, 'seed: rows ~ N(0, shift(N) / tr(N)), N the source CNFM')

cov_rule('agop', function(info, ctx)
  local S = agop_sqrt(ctx, info.layer)
  return S, init.shift, 1 / trace(S)
end, 'seed: rows ~ N(0, shift(G^1/2) / tr(G^1/2)), G the source AGOP')

cov_rule('kaiming_nfm', function(info, ctx)
  return init.source(ctx, 'nfm', info.layer), init.shift, math.sqrt(2 / info.fan_in)
end, 'seed: rows ~ N(0, sqrt(2 / fan_in) shift(N))')

cov_rule('kaiming_agop', function(info, ctx)
  return agop_sqrt(ctx, info.layer), init.shift, math.sqrt(2 / info.fan_in) / 100
end, 'seed: rows ~ N(0, sqrt(2 / fan_in) shift(G^1/2) / 100)')

-- ------------------------------------------------------------------------------------
-- ours: covariance proportional to the source, at Kaiming's scale

--- Σ = c M⁺ (negative eigenvalues clipped) with tr(Σ) = E‖w‖² = 2 d / fan_in (Kaiming's,
--- = 2 for a conv filter): M, init.clip and c.
local function scaled_cov(M, info, d)
  local lam = init.clip(M:eig():totable())
  local tr = 0
  for _, v in ipairs(lam) do tr = tr + v end
  if tr <= 0 then error(string.format('init: source matrix of layer %d is zero', info.layer), 0) end
  return M, init.clip, 2 * d / info.fan_in / tr
end

local function scaled(w, M, info, ctx)
  local _, f, sc = scaled_cov(M, info, w:numel() // w:size(1))
  return init.draw_rows(w, M, f, sc, ctx.generator)
end

cov_rule('nfm_scaled', function(info, ctx, w)
  return scaled_cov(init.source(ctx, 'nfm', info.layer), info, w:numel() // w:size(1))
end, 'ours: rows ~ N(0, Σ), Σ ∝ N (clipped), E|w|^2 as Kaiming')

cov_rule('agop_scaled', function(info, ctx, w)
  return scaled_cov(agop_sqrt(ctx, info.layer), info, w:numel() // w:size(1))
end, 'ours: rows ~ N(0, Σ), Σ ∝ G^1/2 (clipped), E|w|^2 as Kaiming')

init.register('agop_at_init', function(w, info, ctx)
  -- Data-dependent, no trained network: the AGOP^1/2 of the network as it is now (layers
  -- before this one already redrawn) on ctx.batch. Layers are visited in order by apply.
  if not ctx.batch then error("init: rule 'agop_at_init' needs ctx.batch (a batch of images)", 0) end
  if info.kind ~= 'conv' then return nil end
  local t0 = agop.time()
  w:normal_(0, math.sqrt(2 / info.fan_in), ctx.generator) -- start from Kaiming
  local _, half = require('agop.features').agop(ctx.model, ctx.batch,
    {batch = ctx.batch:size(1), power = 0.5, layers = {info.layer}})
  scaled(w, half[info.layer], info, ctx)
  ctx.cost_seconds = (ctx.cost_seconds or 0) + (agop.time() - t0)
  return w
end, 'ours: from Kaiming, layer by layer, redraw from the current net\'s AGOP^1/2 on ctx.batch')

-- ------------------------------------------------------------------------------------
-- controls: what of a covariance rule's Σ matters - its norm, its spectrum, its subspace?
-- ctx.match names the covariance rule whose Σ they take apart (default 'nfm').

--- The eigenvalues (a list, ascending, >= 0) and eigenvectors (columns of a d x d tensor)
--- of the Σ that covariance rule `name` would draw this layer's filters from.
function init.spectrum(name, info, ctx, w)
  local cov = init.covariances[name]
  if not cov then
    error(string.format("init: ctx.match must name a covariance rule (%s), got '%s'",
      table.concat(util.keys(init.covariances), ', '), tostring(name)), 0)
  end
  local M, f, scale = cov(info, ctx, w)
  local vals, vecs = M:eig()
  local lam = f(vals:totable())
  for i, v in ipairs(lam) do lam[i] = math.max(v, 0) * scale end
  return lam, vecs
end

local function sum(xs)
  local s = 0
  for _, v in ipairs(xs) do s = s + v end
  return s
end

-- rows z (c_out x k) D Bᵀ with D = diag(sqrt(lam)) (k) and B (d x k): covariance B D² Bᵀ
local function draw_in_basis(w, lam, B, gen)
  local k = #lam
  local s = agop.zeros(k)
  for i = 1, k do s[i] = math.sqrt(lam[i]) end
  local z = agop.randn(gen, w:size(1), k)
  w:copy((z * s):mm(B:t()):view(w:size()))
  return w
end

init.register('iso_matched', function(w, info, ctx)
  local lam = init.spectrum(ctx.match or 'nfm', info, ctx, w)
  return w:normal_(0, math.sqrt(sum(lam) / #lam), ctx.generator)
end, "control: N(0, tr(Σ)/d I), Σ the ctx.match rule's: its expected filter norm only")

init.register('spectrum_matched', function(w, info, ctx)
  local lam = init.spectrum(ctx.match or 'nfm', info, ctx, w)
  local d = #lam
  local a = agop.randn(ctx.generator, d, d)
  local _, q = a:mm(a:t()):eig() -- a Haar-random orthogonal basis
  return draw_in_basis(w, lam, q, ctx.generator)
end, "control: Σ's eigenvalues (ctx.match rule) with random orthogonal eigenvectors")

init.register('subspace_matched', function(w, info, ctx)
  local lam, vecs = init.spectrum(ctx.match or 'nfm', info, ctx, w)
  local d, cout = #lam, w:size(1)
  local k = math.min(cout, d)
  local flat = {}
  for i = 1, k do flat[i] = sum(lam) / k end
  -- eigenvalues ascend: the top k eigenvectors are the last k columns
  return draw_in_basis(w, flat, vecs:narrow(2, d - k + 1, k), ctx.generator)
end, "control: Σ's top-c_out eigenvectors (ctx.match rule) with a flat spectrum, same trace")

return init
