-- agop.models - network architectures used by the studies.
--
--   local m = models.vgg11{in_channels = 1, num_classes = 10, width = 0.25}
--   m.features, m.classifier     -- nn.Sequential, named like PyTorch's (features.0, ...)
--   m.convs[l]                   -- the l-th conv layer (l = 1..8)
--   m.config                     -- the options it was built from (all filled in)
--   m:state_dict()               -- {{name = 'features.0.weight', tensor = ...}, ...}
--   models.build(m.config)       -- the same architecture again (e.g. from a file's
--                                -- metadata), freshly initialized
--   models.save(m, 'model.safetensors')   -- PyTorch names, config in __metadata__
--   m = models.load('model.safetensors')  -- rebuilt from that config, weights loaded
local nn = require('agop.nn')
local util = require('agop.util')
local check = require('agop.check')
local init = require('agop.init')

local models = {}
local fmt = string.format

-- A VGG: features (convolutions and pools), a flatten, a classifier. It is an
-- nn.Sequential of those three, so forward / backward / parameters / __tostring work as
-- for any container; state_dict names follow torchvision (features.<i>, classifier.<i>).
local VGG = nn.class('models.VGG', nn.Sequential)
models.VGG = VGG

function VGG:__init(features, classifier, config)
  nn.Sequential.__init(self)
  self.features = features
  self.flatten = nn.Flatten()
  self.classifier = classifier
  self.modules = {features, self.flatten, classifier}
  self.config = config
  self.convs = {}
  for _, m in ipairs(features.modules) do
    if nn.is_a(m, nn.Conv2d) then self.convs[#self.convs + 1] = m end
  end
end

function VGG:_children()
  return {{'features', self.features}, {'flatten', self.flatten},
          {'classifier', self.classifier}}
end

local VGG_CONFIGS = {
  vgg11 = {64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'},
}

local MAXNUMEL = check.MAXNUMEL -- no tensor may be larger

-- Checks the options of a VGG and lays it out without allocating anything:
-- plan.features and plan.classifier are lists of layers ({'conv', cin, cout, k},
-- {'bn', c}, {'relu'}, {'pool'}, {'linear', nin, nout}, {'dropout'}), plan.opt the
-- options with defaults filled in. Every layer's size is bounded (MAXNUMEL).
local function plan_vgg(arch, opt)
  local who = 'models.' .. arch
  opt = util.options(opt, {
    in_channels = 1, num_classes = 10, input_size = 32, width = 1.0, batchnorm = false,
    head = 'linear', first_kernel = 3, hidden = 4096, dropout = 0.5, init = 'kaiming',
    generator = false,
  }, who)
  check.int(who, 'in_channels', opt.in_channels, 1)
  check.int(who, 'num_classes', opt.num_classes, 1)
  check.int(who, 'input_size', opt.input_size, 1)
  check.int(who, 'first_kernel', opt.first_kernel, 1)
  check.int(who, 'hidden', opt.hidden, 1)
  if opt.first_kernel % 2 == 0 then
    error(fmt('%s: first_kernel must be odd (same-size padding), got %d', who,
              opt.first_kernel), 0)
  end
  if type(opt.width) ~= 'number' or not (opt.width > 0) or opt.width == math.huge then
    error(fmt('%s: width must be a positive number, got %s', who, tostring(opt.width)), 0)
  end
  if opt.head ~= 'linear' and opt.head ~= 'classic' then
    error(fmt("%s: head must be 'linear' or 'classic', got %s", who, tostring(opt.head)), 0)
  end
  if opt.init ~= 'kaiming' and opt.init ~= 'pytorch' then
    error(fmt("%s: init must be 'kaiming' or 'pytorch', got %s", who, tostring(opt.init)), 0)
  end
  if type(opt.dropout) ~= 'number' or opt.dropout < 0 or opt.dropout >= 1 then
    error(fmt('%s: dropout must be in [0, 1), got %s', who, tostring(opt.dropout)), 0)
  end
  -- sizes are multiplied as floats, so a huge option cannot wrap around
  local function bounded(what, ...)
    local n = 1.0
    for _, v in ipairs({...}) do n = n * v end
    if n > MAXNUMEL then
      error(fmt('%s: %s would hold %.3g parameters, over the limit of %d', who, what, n,
                MAXNUMEL), 0)
    end
  end

  local features, classifier = {}, {}
  local c, s = opt.in_channels, opt.input_size
  local first = true
  for _, v in ipairs(VGG_CONFIGS[arch]) do
    if v == 'M' then
      if s < 2 then
        error(fmt('%s: input_size %d is too small for the five 2x2 poolings (needs >= 32)',
                  who, opt.input_size), 0)
      end
      features[#features + 1] = {'pool'}
      s = s // 2
    else
      local cout = math.max(1, math.floor(v * opt.width + 0.5))
      local k = first and opt.first_kernel or 3
      bounded(fmt('conv layer %d', #features + 1), cout, c, k, k)
      features[#features + 1] = {'conv', c, math.tointeger(cout), k}
      if opt.batchnorm then features[#features + 1] = {'bn', math.tointeger(cout)} end
      features[#features + 1] = {'relu'}
      c, first = math.tointeger(cout), false
    end
  end
  bounded('the first linear layer', c, s, s, opt.head == 'linear' and opt.num_classes or opt.hidden)
  local nin = c * s * s
  if opt.head == 'linear' then
    classifier[1] = {'linear', nin, opt.num_classes}
  else
    bounded('the hidden linear layer', opt.hidden, opt.hidden)
    bounded('the last linear layer', opt.hidden, opt.num_classes)
    classifier = {{'linear', nin, opt.hidden}, {'relu'}, {'dropout'},
      {'linear', opt.hidden, opt.hidden}, {'relu'}, {'dropout'},
      {'linear', opt.hidden, opt.num_classes}}
  end
  return {features = features, classifier = classifier, opt = opt}
end

-- The state_dict of a plan, as {name =, size = {...}} in order, without allocating.
local function plan_state(plan)
  local out = {}
  local function add(prefix, list)
    for i, l in ipairs(list) do
      local p = fmt('%s.%d.', prefix, i - 1)
      if l[1] == 'conv' then
        out[#out + 1] = {name = p .. 'weight', size = {l[3], l[2], l[4], l[4]}}
        out[#out + 1] = {name = p .. 'bias', size = {l[3]}}
      elseif l[1] == 'bn' then
        for _, k in ipairs({'weight', 'bias', 'running_mean', 'running_var'}) do
          out[#out + 1] = {name = p .. k, size = {l[2]}}
        end
      elseif l[1] == 'linear' then
        out[#out + 1] = {name = p .. 'weight', size = {l[3], l[2]}}
        out[#out + 1] = {name = p .. 'bias', size = {l[3]}}
      end
    end
  end
  add('features', plan.features)
  add('classifier', plan.classifier)
  return out
end

local function build_vgg(arch, opt)
  local plan = plan_vgg(arch, opt)
  opt = plan.opt
  local gen = opt.generator or nil
  local features = nn.Sequential()
  for _, l in ipairs(plan.features) do
    if l[1] == 'pool' then
      features:add(nn.MaxPool2d(2, {stride = 2}))
    elseif l[1] == 'conv' then
      local conv = nn.Conv2d(l[2], l[3], l[4], {padding = l[4] // 2, generator = gen})
      if opt.init == 'kaiming' then init.module(conv, 'vgg_kaiming', {generator = gen}) end
      features:add(conv)
    elseif l[1] == 'bn' then
      features:add(nn.BatchNorm2d(l[2]))
    else
      features:add(nn.ReLU({inplace = not opt.batchnorm})) -- the conv's output is its own
    end
  end
  local classifier = nn.Sequential()
  for _, l in ipairs(plan.classifier) do
    if l[1] == 'linear' then
      classifier:add(nn.Linear(l[2], l[3], {generator = gen}))
    elseif l[1] == 'relu' then
      classifier:add(nn.ReLU())
    else
      classifier:add(nn.Dropout(opt.dropout, {generator = gen}))
    end
  end

  local config = util.copy(opt)
  config.generator = nil
  config.arch = arch
  return VGG(features, classifier, config)
end

-- models.vgg11{in_channels = 1, num_classes = 10, input_size = 32, width = 1.0,
--   batchnorm = false, head = 'linear' | 'classic', first_kernel = 3, hidden = 4096,
--   dropout = 0.5, init = 'kaiming' | 'pytorch', generator = nil}
-- VGG11 (configuration A): conv 64-M-128-M-256-256-M-512-512-M-512-512-M, each conv
-- 3x3 padding 1 (the first one first_kernel x first_kernel), followed by BatchNorm2d when
-- batchnorm and ReLU; M = 2x2 max pool. Channel counts are scaled by width (rounded, at
-- least 1). head 'linear': one Linear(512*width * (input_size/32)^2 -> num_classes);
-- 'classic': Linear-ReLU-Dropout-Linear-ReLU-Dropout-Linear with `hidden` units.
-- init 'kaiming': conv weights N(0, 2/fan_in), conv biases 0 (VGG11 without batchnorm
-- does not train from PyTorch's default init); 'pytorch': every layer keeps PyTorch's
-- default. Linear layers always start from PyTorch's default.
function models.vgg11(opt) return build_vgg('vgg11', opt) end

-- The arch and the other options of a config (model.config, or a file's metadata).
local function split_config(config, who)
  if type(config) ~= 'table' then
    error(fmt('%s: config must be a table, got %s', who, type(config)), 0)
  end
  local arch = config.arch
  if type(arch) ~= 'string' or not VGG_CONFIGS[arch] then
    error(fmt("%s: unknown arch '%s'", who, tostring(arch)), 0)
  end
  local opt = util.copy(config)
  opt.arch = nil
  return arch, opt
end

-- models.build(config): the model a config (model.config, or a file's metadata) describes.
function models.build(config)
  return build_vgg(split_config(config, 'models.build'))
end

-- models.state_spec(config) -> {{name =, size = {...}}, ...}: the state_dict the model
-- of a config would have, computed without building (or allocating) it.
function models.state_spec(config)
  local arch, opt = split_config(config, 'models.state_spec')
  return plan_state(plan_vgg(arch, opt))
end

-- models.save(model, path [, metadata]): the model's state_dict as safetensors (PyTorch
-- names and layouts), with __metadata__ = {format = 'agoplua', arch = ..., config = the
-- JSON of model.config} plus the given metadata (strings; numbers and booleans are
-- converted).
function models.save(model, path, metadata)
  if type(model) ~= 'table' or type(model.state_dict) ~= 'function' then
    error('models.save: expected a model, got ' .. (nn.typename(model) or type(model)), 0)
  end
  if type(model.config) ~= 'table' then
    error('models.save: the model has no config (build it with models.vgg11{...})', 0)
  end
  local json = require('agop.json')
  local meta = {}
  for k, v in pairs(metadata or {}) do meta[k] = v end
  meta.format = 'agoplua'
  meta.arch = tostring(model.config.arch)
  meta.config = json.encode(model.config)
  require('agop.files').save_safetensors(path, model:state_dict(), meta)
  return path
end

-- models.load(path [, config]) -> model: builds the architecture the file's metadata
-- describes (or `config`, for files written elsewhere, e.g. by PyTorch) and loads its
-- tensors (shapes checked; every tensor of the model must be present).
--- model:save(path [, metadata]) - the same as models.save(model, path, metadata).
function VGG:save(path, metadata) return models.save(self, path, metadata) end

function models.load(path, config)
  local tensors, meta = require('agop.files').load_safetensors(path)
  if config == nil then
    if type(meta.config) ~= 'string' then
      error(fmt("models.load: %s has no agoplua config in its metadata; pass one: "
                .. "models.load(path, {arch = 'vgg11', width = ..., ...})", tostring(path)),
            2)
    end
    local ok, cfg = pcall(require('agop.json').decode, meta.config)
    if not ok or type(cfg) ~= 'table' then
      error(fmt('models.load: %s: bad config in metadata (%s)', tostring(path),
                tostring(cfg)), 0)
    end
    config = cfg
  end
  -- the file's tensors against the architecture, before building (and allocating) it:
  -- metadata cannot ask for a network larger than the file
  local function bad(msg) error(fmt('models.load: %s: %s', tostring(path), msg), 0) end
  local ok, spec = pcall(models.state_spec, config)
  if not ok then bad(tostring(spec)) end
  local known = {}
  for _, e in ipairs(spec) do
    known[e.name] = true
    local t = tensors[e.name]
    if t == nil then
      bad(fmt("the config's architecture has '%s' (%s), the file does not", e.name,
              check.sizes(e.size)))
    end
    local size = check.sizes(t:size())
    if size ~= check.sizes(e.size) then
      bad(fmt("'%s' is %s in the file but %s in the config's architecture", e.name, size,
              check.sizes(e.size)))
    end
  end
  local extra = {}
  for name in pairs(tensors) do
    if not known[name] and not name:match('num_batches_tracked$') then
      extra[#extra + 1] = name
    end
  end
  table.sort(extra)
  if #extra > 0 then
    bad(fmt("unexpected '%s'%s: not in the config's architecture", extra[1],
            #extra > 1 and fmt(' (and %d more)', #extra - 1) or ''))
  end
  local ok1, model = pcall(models.build, config)
  if not ok1 then bad(tostring(model)) end
  local ok2, err = pcall(model.load_state_dict, model, tensors)
  if not ok2 then bad(tostring(err)) end
  return model
end

return models
