-- agop.features: the feature matrices of conv layers (README: "Feature matrices").
--
--   features.nfm(conv)                       -- CNFM W^T W (d x d), conv an nn.Conv2d or a
--                                            -- weight tensor (c_out, c_in, k, k)
--   features.agop(model, images, opts)       -- {G_1, ..., G_L}: patch-AGOP of every conv in
--                                            -- model.convs, G_l = W^T S_l W / n; also
--                                            -- {G_l^a} (opts.power) and the factors {S_l / n}
--   features.agop_expand(S, conv [, a])      -- W^T S W (d x d), or its power a, from a
--                                            -- factor S (c_out x c_out) of features.agop
--   features.corr(A, B), features.cosine(A, B)   -- Pearson over entries / uncentered
--   features.pow(M, a) == M:matpow(a)        -- M^a, negative eigenvalues clipped to 0
--   features.eig(M) == M:eig()               -- eigenvalues (ascending), eigenvectors (columns)
--   features.feature_map(M, image, model, l) -- (H, W) map of |M p| over the patches p of
--                                            -- conv l's input, min-max normalized to [0, 1]
--
-- The AGOP fast path: one forward of a batch in evaluation mode; then, for every class c,
-- a backward pass seeded with the one-hot e_c on the logits (before any softmax) that
-- calls only updateGradInput (no parameter gradients); at every conv its gradOutput
-- g = df_c/dz (z the conv output, bias included) is folded into a double-precision
-- S_l += sum over images and positions of g g^T. Because z_ij = W p_ij + b, the
-- per-patch gradient is W^T g_ij, so G_l = W^T S_l W / n without ever forming a
-- per-patch gradient. S_l / n is rounded to float32 once, and G_l (and G_l^a) are
-- computed from that rounded factor, so the factor (c_out^2 floats, stored where the
-- d x d matrix is too big) gives back exactly the same G_l through features.agop_expand.
local agop = require('agop')
local nn = require('agop.nn')
local util = require('agop.util')

local features = {}
local fmt = string.format

local function is_conv(m)
  return type(m) == 'table' and nn.is_a(m, nn.Conv2d)
end

local function weight_of(who, conv)
  if agop.is_tensor(conv) then return conv end
  if is_conv(conv) then return conv.weight end
  error(fmt('%s: expected an nn.Conv2d or a weight tensor, got %s', who,
            nn.typename(conv) or type(conv)), 3)
end

--- CNFM of a conv layer: W^T W with W the weight flattened to (c_out, c_in*k*k).
function features.nfm(conv)
  return agop.nfm(weight_of('features.nfm', conv))
end

function features.corr(a, b) return agop.corr(a, b) end
function features.cosine(a, b) return agop.cosine(a, b) end
function features.pow(m, a) return agop.matpow(m, a) end
function features.eig(m) return agop.eig(m) end

-- The convs of a model: model.convs, or every nn.Conv2d found depth-first.
local function convs_of(model)
  if type(model.convs) == 'table' and #model.convs > 0 then return model.convs end
  local out = {}
  local function visit(m)
    if is_conv(m) then out[#out + 1] = m end
    for _, c in ipairs(m.modules or {}) do visit(c) end
  end
  visit(model)
  return out
end

-- ReLU then max-pooling (VGG's conv -> ReLU -> pool), walked back in one pass by
-- agop.agop_unpool_relu: the same values as the two modules' updateGradInput, without a
-- pass over the large gradient (exact class names: a subclass may behave otherwise).
local function fuses(relu, pool)
  return nn.typename(relu) == 'nn.ReLU' and nn.typename(pool) == 'nn.MaxPool2d'
    and agop.is_tensor(pool.indices) and agop.is_tensor(pool.output)
    and agop.is_tensor(relu.output) and relu.output:dim() == 4
end

-- Backward through module m (input x, gradOutput g) calling updateGradInput only, in
-- reverse order through nested nn.Sequential containers. hooks.conv(conv, g) is called with
-- every conv's gradOutput and returns true to stop the walk there (nothing below is
-- needed). Where conv -> ReLU -> pool, hooks.pooled(conv, idx, p, gy) comes first, with
-- the pool's indices, output and output gradient; it returns 'stop' when it has done
-- conv's part and nothing below conv is needed (conv's gradOutput is then never formed).
-- bufs[pool] keeps the fused ReLU + pool gradients for the next walk. Returns gradInput,
-- or nil when stopped.
local function walk_back(m, x, g, hooks, bufs)
  if m.modules then
    if not nn.is_a(m, nn.Sequential) then
      error(fmt('cannot walk back through container %s (only nn.Sequential)',
                nn.typename(m)), 0)
    end
    local i = #m.modules
    while i >= 1 do
      local mod, prev = m.modules[i], m.modules[i - 1]
      if prev and fuses(prev, mod) then
        local below = m.modules[i - 2]
        if below and is_conv(below)
            and hooks.pooled(below, mod.indices, mod.output, g) == 'stop' then
          return nil
        end
        local y = prev.output
        local ok, r = pcall(agop.agop_unpool_relu, mod.indices, mod.output, g, y:size(3),
                            y:size(4), bufs[mod])
        if not ok then error(fmt('%s: %s', nn.typename(mod), tostring(r)), 0) end
        bufs[mod], g, i = r, r, i - 2
      else
        g = walk_back(mod, prev and prev.output or x, g, hooks, bufs)
        if g == nil then return nil end
        i = i - 1
      end
    end
    return g
  end
  if is_conv(m) and hooks.conv(m, g) then return nil end
  local ok, r = pcall(m.updateGradInput, m, x, g)
  if not ok then error(fmt('%s: %s', nn.typename(m), tostring(r)), 0) end
  return r
end

local function check_images(who, images)
  if not agop.is_tensor(images) then
    error(fmt('%s: images must be a tensor (N, C, H, W), got %s', who, type(images)), 3)
  end
  if images:dim() == 3 then images = images:reshape(images:size(1), 1, images:size(2),
                                                    images:size(3)) end
  if images:dim() ~= 4 or images:size(1) < 1 then
    error(fmt('%s: images must be (N, C, H, W) with N >= 1, got %s', who,
              table.concat(images:size(), 'x')), 3)
  end
  return images
end

-- The list of 1-based class indices to seed, from opts.classes (false: all, a number k:
-- the first k, a list: those).
local function class_list(who, classes, nclass)
  local out = {}
  if classes == false then
    for c = 1, nclass do out[c] = c end
  elseif type(classes) == 'number' then
    if classes ~= math.floor(classes) or classes < 1 or classes > nclass then
      error(fmt('%s: classes must be an integer in [1, %d], got %s', who, nclass,
                tostring(classes)), 3)
    end
    for c = 1, classes do out[c] = c end
  elseif type(classes) == 'table' then
    for i, c in ipairs(classes) do
      if type(c) ~= 'number' or c ~= math.floor(c) or c < 1 or c > nclass then
        error(fmt('%s: classes[%d] must be a class index in [1, %d], got %s', who, i,
                  nclass, tostring(c)), 3)
      end
      out[i] = c
    end
    if #out == 0 then error(who .. ': classes is an empty list', 3) end
  else
    error(fmt('%s: classes must be false, a number or a list, got %s', who, type(classes)), 3)
  end
  return out
end

-- W^T S W, or its power, from a float (c_out, c_out) factor S: the one path of both
-- features.agop and features.agop_expand, so that they agree bit for bit. The binding
-- checks that S is finite and symmetric; its errors come back with `who` in front, raised
-- at the caller of `who`.
local function from_factor(who, s, w, power)
  local ok, g
  if power then
    ok, g = pcall(agop.agop_pow, s, w, 1, power)
  else
    ok, g = pcall(agop.agop_finish, s, w, 1)
  end
  if not ok then error(who .. ': ' .. tostring(g), 3) end
  return g
end

--- features.agop(model, images, opts) -> {G_1, ..., G_L}, {G_1^power, ...} or nil,
---                                       {S_1 / n, ..., S_L / n}
---   model:  an nn model whose forward gives the logits (B, C) (before softmax), built of
---           nested nn.Sequential; its convs are model.convs (else found depth-first)
---   images: (N, C, H, W) (or (N, H, W))
---   opts:   batch = 100 (images per forward), classes = false (all logits; or k for
---           the first k, or a list of 1-based indices), progress = false (true: a line
---           on stderr per batch; or function(done, n)), power = false (a number a > 0:
---           also return G_l^a, computed from the rank-c_out factorization),
---           layers = false (a list of conv indices: only those; the result then
---           holds nil for the others), expand = true (false: only the factors S_l / n;
---           the first two results are nil - for sums over many blocks of images),
---           probes = false (a number k: the sketched AGOP, k Gaussian seeds
---           v ~ N(0, I_C) per image instead of the C one-hot ones; E[J^T v v^T J] = J^T J,
---           so it is unbiased, with k backward passes instead of C), seed = 1 (the
---           probes' generator seed; or generator = an agop.Generator)
--- n in G = W^T S W / n is the number of images. The third result holds each layer's
--- inner factor S_l / n as a float32 (c_out, c_out) tensor; G_l and G_l^power are computed
--- from it as rounded, so features.agop_expand(S_l / n, conv_l [, power]) returns them
--- bit for bit (on the same machine and thread count). The model runs in evaluation mode
--- and gets its previous mode back afterwards. The fourth result says what was summed:
--- {images = n, seeds = 'classes' or 'gaussian', probes = k, seed = s} (for run.json).
function features.agop(model, images, opts)
  local who = 'features.agop'
  if type(model) ~= 'table' or type(model.forward) ~= 'function' then
    error(who .. ': model must be an nn module', 2)
  end
  images = check_images(who, images)
  opts = util.options(opts, {batch = 100, classes = false, progress = false, power = false,
                             layers = false, expand = true, probes = false, seed = 1,
                             generator = false}, who)
  local probes = opts.probes
  if probes ~= false and (math.type(probes) ~= 'integer' or probes < 1) then
    error(fmt('%s: probes must be a positive integer, got %s', who, tostring(probes)), 2)
  end
  if probes and opts.classes then
    error(who .. ': probes and classes exclude each other (probes sketch all classes)', 2)
  end
  local gen = probes and (opts.generator or agop.Generator(opts.seed))
  if type(opts.batch) ~= 'number' or opts.batch < 1 or opts.batch ~= math.floor(opts.batch) then
    error(fmt('%s: batch must be a positive integer, got %s', who, tostring(opts.batch)), 2)
  end
  if opts.power ~= false and (type(opts.power) ~= 'number' or not (opts.power > 0)
                              or opts.power == math.huge) then
    error(fmt('%s: power must be a finite number > 0, got %s', who, tostring(opts.power)), 2)
  end
  local convs = convs_of(model)
  if #convs == 0 then error(who .. ': the model has no nn.Conv2d', 2) end
  local index, wanted, nwanted = {}, {}, 0
  for l, conv in ipairs(convs) do index[conv] = l end
  if opts.layers then
    for _, l in ipairs(opts.layers) do
      if not convs[l] then
        error(fmt('%s: layers: no conv %s (the model has %d)', who, tostring(l), #convs), 2)
      end
      if not wanted[l] then wanted[l], nwanted = true, nwanted + 1 end
    end
  else
    for l = 1, #convs do wanted[l] = true end
    nwanted = #convs
  end
  local progress = opts.progress
  if progress == true then
    local tty, t0, next_pct = agop.isatty(2), agop.time(), 25
    progress = function(done, n)
      local pct = 100 * done / n
      if tty then
        io.stderr:write(fmt('\ragop: %d/%d images, %.0fs', done, n, agop.time() - t0))
      elseif pct >= next_pct or done == n then -- in a log: a line every quarter
        io.stderr:write(fmt('agop: %d/%d images, %.0fs\n', done, n, agop.time() - t0))
        next_pct = next_pct + 25
      end
    end
  end

  local n = images:size(1)
  local acc = {}
  for l, conv in ipairs(convs) do
    if wanted[l] then acc[l] = agop.dmatrix(conv.out_channels) end
  end

  local was_training = model.training
  model:evaluate()
  local bufs = setmetatable({}, {__mode = 'k'})
  -- under mpirun, rank r takes batches r+1, r+1+size, ... and the S_l are summed below;
  -- whole batches, so each image's gradients are those of one process
  local dist = require('agop.dist')
  local rank, size = dist.rank(), dist.size()
  local ok, err = pcall(function()
    for first = 1 + rank * opts.batch, n, opts.batch * size do
      local b = math.min(opts.batch, n - first + 1)
      local x = images:narrow(1, first, b):contiguous()
      local logits = model:forward(x)
      if logits:dim() ~= 2 or logits:size(1) ~= b then
        error(fmt('the model output is %s, expected logits (%d, C)',
                  table.concat(logits:size(), 'x'), b), 0)
      end
      local classes = probes and {} or class_list(who, opts.classes, logits:size(2))
      local seed = agop.zeros(b, logits:size(2))
      for c = 1, probes or #classes do
        agop.check_interrupt() -- Ctrl-C in the REPL stops here (the mode is restored)
        if probes then
          seed:normal_(0, 1, gen) -- v ~ N(0, I_C), one per image
        else
          seed:zero()
          for i = 1, b do seed:set(i, classes[c], 1) end
        end
        local seen, done = 0, {}
        walk_back(model, x, seed, {
          conv = function(conv, g)
            local l = index[conv]
            if l and wanted[l] then
              if not done[conv] then agop.agop_accumulate(acc[l], g) end
              seen = seen + 1
            end
            return seen == nwanted
          end,
          -- S_l from the pool's side (engine/gram.h: a quarter of the products), and where
          -- conv l is the last one needed, its gradOutput is never formed
          pooled = function(conv, idx, p, gy)
            local l = index[conv]
            if not (l and wanted[l]) or not agop.agop_accumulate_pooled(acc[l], idx, p, gy) then
              return nil
            end
            done[conv] = true
            if seen + 1 == nwanted then
              seen = seen + 1
              return 'stop'
            end
          end}, bufs)
        if seen ~= nwanted then
          error(fmt('the backward walk met %d of the %d convs (is every conv inside '
                    .. 'nested nn.Sequential?)', seen, nwanted), 0)
        end
      end
      if progress and rank == 0 then progress(math.min(n, first - 1 + size * b), n) end
    end
  end)
  if was_training then model:train() end
  if not ok then error(who .. ': ' .. tostring(err), 2) end
  for l = 1, #convs do if acc[l] then dist.allreduce(acc[l]) end end
  if opts.progress == true and agop.isatty(2) then io.stderr:write('\n') end

  local gs, ps, ss = opts.expand and {} or nil, opts.expand and opts.power and {} or nil, {}
  for l, conv in ipairs(convs) do
    if wanted[l] then
      ss[l] = acc[l]:tensor(n * (probes or 1)) -- S / n, rounded to float32 once
      if gs then gs[l] = from_factor(who, ss[l], conv.weight) end
      if ps then ps[l] = from_factor(who, ss[l], conv.weight, opts.power) end
    end
  end
  local info = {images = n, seeds = probes and 'gaussian' or 'classes', probes = probes or nil,
                seed = probes and (opts.generator and opts.generator:seed() or opts.seed) or nil}
  return gs, ps, ss, info
end

--- features.agop_expand(S, conv [, power]) -> (d, d) tensor
---   S:     the factor S_l / n of features.agop (its third result), a symmetric float
---          (c_out, c_out) tensor, e.g. loaded from conv<l>_agop_s.npy
---   conv:  the nn.Conv2d (or its weight (c_out, c_in, k, k) or (c_out, d)) of that layer
---   power: nil for G = W^T S W, or a number a > 0 for G^a (negative eigenvalues clipped)
--- The same arithmetic as features.agop, so on the same machine and thread count the
--- result equals its G_l (or G_l^a) bit for bit.
function features.agop_expand(s, conv, power)
  local who = 'features.agop_expand'
  local w = weight_of(who, conv)
  if w:dim() ~= 4 and w:dim() ~= 2 then
    error(fmt('%s: weight must be (c_out, c_in, k, k) or (c_out, d), got %s', who,
              table.concat(w:size(), 'x')), 2)
  end
  local co = w:size(1)
  if not agop.is_tensor(s) then
    error(fmt('%s: S must be a %dx%d tensor, got %s', who, co, co, type(s)), 2)
  end
  if s:dim() ~= 2 or s:size(1) ~= co or s:size(2) ~= co then
    error(fmt('%s: S is %s, expected %dx%d (the weight %s has %d output channels)', who,
              table.concat(s:size(), 'x'), co, co, table.concat(w:size(), 'x'), co), 2)
  end
  if power ~= nil and (type(power) ~= 'number' or not (power > 0) or power == math.huge) then
    error(fmt('%s: power must be nil or a finite number > 0, got %s', who, tostring(power)), 2)
  end
  -- from_factor checks that S is finite and symmetric; not a tail call, so that its
  -- errors point at our caller
  local g = from_factor(who, s, w, power)
  return g
end

--- features.feature_map(M, image, model, layer) -> (H', W') tensor in [0, 1]
--- Runs image (C, H, W) or (1, C, H, W) through model.features up to the input of conv
--- `layer` (evaluation mode; the previous mode is restored), then maps every stride-1
--- patch p of that input (the conv's kernel and padding) to |M p|_2, min-max normalized.
function features.feature_map(m, image, model, layer)
  local who = 'features.feature_map'
  if not agop.is_tensor(image) then
    error(fmt('%s: image must be a tensor (C, H, W), got %s', who, type(image)), 2)
  end
  if image:dim() == 2 then image = image:reshape(1, 1, image:size(1), image:size(2)) end
  if image:dim() == 3 then image = image:reshape(1, image:size(1), image:size(2),
                                                 image:size(3)) end
  if image:dim() ~= 4 or image:size(1) ~= 1 then
    error(fmt('%s: image must be (C, H, W) or (1, C, H, W), got %s', who,
              table.concat(image:size(), 'x')), 2)
  end
  local convs = type(model) == 'table' and convs_of(model) or {}
  local conv = convs[layer]
  if not conv then
    error(fmt('%s: no conv layer %s (the model has %d)', who, tostring(layer), #convs), 2)
  end
  local body = model.features or model
  local x = image:contiguous()
  local was_training = model.training
  model:evaluate()
  local ok, err = pcall(function()
    local found = false
    for _, mod in ipairs(body.modules or {}) do
      if mod == conv then found = true break end
      x = mod:forward(x)
    end
    if not found then
      error(fmt('conv %d is not a direct child of the model\'s features', layer), 0)
    end
  end)
  if was_training then model:train() end
  if not ok then error(who .. ': ' .. tostring(err), 2) end
  return agop.feature_map(m, x, conv.kernel_size, conv.padding)
end

return features
