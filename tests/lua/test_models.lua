-- models: VGG11 structure, PyTorch names and shapes, initialization, state round trips.
local lu = require('luaunit')
local agop = require('agop')
local nn = require('agop.nn')
local models = require('agop.models')
local errors_with = require('helpers').errors_with

local function names_and_shapes(m)
  local out = {}
  for _, e in ipairs(m:state_dict()) do
    out[#out + 1] = e.name .. ' ' .. table.concat(e.tensor:size(), 'x')
  end
  return out
end

TestVGG11 = {}

function TestVGG11:test_structure_matches_configuration_A()
  local m = models.vgg11{}
  lu.assertEquals(#m.convs, 8)
  local want = {{1, 64}, {64, 128}, {128, 256}, {256, 256}, {256, 512}, {512, 512},
                {512, 512}, {512, 512}}
  for l, c in ipairs(m.convs) do
    lu.assertEquals({c.in_channels, c.out_channels}, want[l], 'conv ' .. l)
    lu.assertEquals({c.kernel_size, c.stride, c.padding}, {3, 1, 1}, 'conv ' .. l)
  end
  -- torchvision's layout: conv at features.0, 3, 6, 8, 11, 13, 16, 18; pools at 2, 5, ...
  local kinds = {}
  for i, mod in ipairs(m.features.modules) do kinds[i] = nn.typename(mod) end
  lu.assertEquals(#kinds, 21)
  lu.assertEquals(kinds[1], 'nn.Conv2d')
  lu.assertEquals(kinds[2], 'nn.ReLU')
  lu.assertEquals(kinds[3], 'nn.MaxPool2d')
  lu.assertEquals(kinds[21], 'nn.MaxPool2d')
  lu.assertTrue(m.features.modules[19] == m.convs[8])
  lu.assertEquals(names_and_shapes(m), {
    'features.0.weight 64x1x3x3', 'features.0.bias 64',
    'features.3.weight 128x64x3x3', 'features.3.bias 128',
    'features.6.weight 256x128x3x3', 'features.6.bias 256',
    'features.8.weight 256x256x3x3', 'features.8.bias 256',
    'features.11.weight 512x256x3x3', 'features.11.bias 512',
    'features.13.weight 512x512x3x3', 'features.13.bias 512',
    'features.16.weight 512x512x3x3', 'features.16.bias 512',
    'features.18.weight 512x512x3x3', 'features.18.bias 512',
    'classifier.0.weight 10x512', 'classifier.0.bias 10'})
  lu.assertEquals(m.config.arch, 'vgg11')
  lu.assertEquals(m.config.width, 1.0)
  lu.assertEquals(m.config.head, 'linear')
  lu.assertNil(m.config.generator)
end

function TestVGG11:test_width_input_size_first_kernel_and_classic_head()
  local m = models.vgg11{in_channels = 3, num_classes = 7, width = 0.25, input_size = 64,
                         first_kernel = 5, head = 'classic', hidden = 32}
  local chans = {}
  for l, c in ipairs(m.convs) do chans[l] = c.out_channels end
  lu.assertEquals(chans, {16, 32, 64, 64, 128, 128, 128, 128})
  lu.assertEquals({m.convs[1].in_channels, m.convs[1].kernel_size, m.convs[1].padding},
                  {3, 5, 2})
  local names = names_and_shapes(m)
  lu.assertEquals(names[#names - 5], 'classifier.0.weight 32x512') -- 128 * 2 * 2
  lu.assertEquals(names[#names - 3], 'classifier.3.weight 32x32')
  lu.assertEquals(names[#names - 1], 'classifier.6.weight 7x32')
  lu.assertEquals(nn.typename(m.classifier.modules[3]), 'nn.Dropout')
  -- tiny widths keep at least one channel
  local t = models.vgg11{width = 1 / 1024}
  for _, c in ipairs(t.convs) do lu.assertEquals(c.out_channels, 1) end
end

function TestVGG11:test_batchnorm_names()
  local m = models.vgg11{width = 0.125, batchnorm = true}
  lu.assertEquals(#m.features.modules, 29)
  local names = names_and_shapes(m)
  lu.assertEquals(names[1], 'features.0.weight 8x1x3x3')
  lu.assertEquals(names[3], 'features.1.weight 8')
  lu.assertEquals(names[5], 'features.1.running_mean 8')
  lu.assertEquals(names[6], 'features.1.running_var 8')
  lu.assertEquals(names[7], 'features.4.weight 16x8x3x3')
end

function TestVGG11:test_kaiming_normal_init()
  local m = models.vgg11{width = 0.5, generator = agop.Generator(3)}
  for l, c in ipairs(m.convs) do
    local fan_in = c.in_channels * 9
    local std = c.weight:norm() / math.sqrt(c.weight:numel())
    lu.assertTrue(math.abs(std / math.sqrt(2 / fan_in) - 1) < 0.25,
                  string.format('conv %d: std %.4f, expected %.4f', l, std,
                                math.sqrt(2 / fan_in)))
    lu.assertEquals(c.bias:norm(), 0)
  end
  -- same generator seed, same model
  local m2 = models.vgg11{width = 0.5, generator = agop.Generator(3)}
  lu.assertTrue(m2.convs[5].weight:equal(m.convs[5].weight))
  lu.assertTrue(m2.classifier.modules[1].weight:equal(m.classifier.modules[1].weight))
  -- init = 'pytorch' keeps the module default
  local p = models.vgg11{width = 0.25, init = 'pytorch'}
  lu.assertTrue(p.convs[1].bias:norm() > 0)
  lu.assertTrue(p.convs[2].weight:max() <= 1 / math.sqrt(16 * 9))
end

function TestVGG11:test_forward_backward_and_delegation()
  local g = agop.Generator(4)
  local m = models.vgg11{width = 1 / 16, generator = g}
  local x = agop.randn(g, 2, 1, 32, 32)
  local y = m:forward(x)
  lu.assertEquals(y:size(), {2, 10})
  lu.assertTrue(m.features.output ~= nil)
  lu.assertEquals(m.features.output:size(), {2, 32, 1, 1})
  local crit = nn.CrossEntropyLoss()
  crit:forward(y, agop.tensor{1, 7})
  local params, grads = m:flatten_parameters()
  m:zeroGrad()
  m:backward(x, crit:backward(y, agop.tensor{1, 7}))
  lu.assertTrue(m.convs[1].gradWeight:norm() > 0)
  lu.assertEquals(params:numel(), m:num_parameters())
  lu.assertTrue(grads:norm() > 0)
  m:evaluate()
  lu.assertFalse(m.features.modules[1].training)
  lu.assertErrorMsgContains('models.VGG[1] (nn.Sequential): Sequential[1] (nn.Conv2d): '
                            .. 'nn.Conv2d: conv2d_shape: input has 3 channels, weight '
                            .. 'expects 1', m.forward, m,
                            agop.zeros(1, 3, 32, 32))
end

function TestVGG11:test_state_dict_round_trip_and_build()
  local g = agop.Generator(5)
  local a = models.vgg11{width = 1 / 16, batchnorm = true, generator = g}
  local b = models.build(a.config)
  lu.assertFalse(b.convs[1].weight:equal(a.convs[1].weight))
  b:load_state_dict(a:state_dict())
  a:evaluate()
  b:evaluate()
  local x = agop.randn(g, 2, 1, 32, 32)
  lu.assertTrue(a:forward(x):equal(b:forward(x)))
  -- a name -> tensor map works too, PyTorch's num_batches_tracked is ignored
  local map = {}
  for _, e in ipairs(a:state_dict()) do map[e.name] = e.tensor end
  map['features.1.num_batches_tracked'] = agop.zeros(1)
  b:load_state_dict(map)
  map['features.99.weight'] = agop.zeros(1)
  lu.assertErrorMsgContains("unexpected 'features.99.weight'", b.load_state_dict, b, map)
  local c = models.vgg11{width = 1 / 8}
  lu.assertErrorMsgContains("'features.0.weight' is 4x1x3x3 in the file but 8x1x3x3",
                            c.load_state_dict, c, a:state_dict())
end

function TestVGG11:test_bad_options()
  lu.assertErrorMsgContains("models.vgg11: unknown option 'widht' (did you mean 'width'?)",
                            models.vgg11, {widht = 2})
  lu.assertErrorMsgContains("head must be 'linear' or 'classic'", models.vgg11, {head = 'mlp'})
  lu.assertErrorMsgContains('input_size 16 is too small', models.vgg11, {input_size = 16})
  lu.assertErrorMsgContains('first_kernel must be odd', models.vgg11, {first_kernel = 4})
  lu.assertErrorMsgContains("unknown arch 'resnet'", models.build, {arch = 'resnet'})
end

function TestVGG11:test_tostring()
  local s = tostring(models.vgg11{width = 1 / 8})
  lu.assertStrContains(s, 'models.VGG {\n  [input -> (1) -> (2) -> (3) -> output]\n'
                          .. '  (1): nn.Sequential {\n')
  lu.assertStrContains(s, '    (1): nn.Conv2d(1 -> 8, 3x3, stride 1, pad 1)\n    (2): nn.ReLU\n'
                          .. '    (3): nn.MaxPool2d(2x2, stride 2)\n')
  lu.assertStrContains(s, '  (3): nn.Sequential {\n    [input -> (1) -> output]\n'
                          .. '    (1): nn.Linear(64 -> 10)\n  }\n}')
end

function TestVGG11:test_save_and_load_round_trip()
  local g = agop.Generator(6)
  local m = models.vgg11{width = 1 / 16, batchnorm = true, head = 'classic', hidden = 8,
                         generator = g}
  m.features.modules[2].running_mean:copy(agop.randn(g, 4)) -- buffers are saved too
  local path = os.tmpname()
  models.save(m, path, {note = 'test', epochs = 3})
  local files = require('agop.files')
  local tensors, meta = files.load_safetensors(path)
  lu.assertEquals(meta.format, 'agoplua')
  lu.assertEquals(meta.arch, 'vgg11')
  lu.assertEquals(meta.epochs, '3')
  lu.assertEquals(tensors['features.0.weight']:size(), {4, 1, 3, 3})
  local back = models.load(path)
  os.remove(path)
  lu.assertEquals(back.config, m.config)
  for i, e in ipairs(back:state_dict()) do
    local mine = m:state_dict()[i]
    lu.assertEquals(e.name, mine.name)
    lu.assertTrue(e.tensor:equal(mine.tensor), e.name)
  end
  m:evaluate()
  back:evaluate()
  local x = agop.randn(g, 2, 1, 32, 32)
  lu.assertTrue(back:forward(x):equal(m:forward(x)))
  -- a file without our config needs one
  local bare = os.tmpname()
  files.save_safetensors(bare, m:state_dict())
  lu.assertErrorMsgContains('has no agoplua config', models.load, bare)
  lu.assertTrue(models.load(bare, m.config).convs[2].weight:equal(m.convs[2].weight))
  lu.assertErrorMsgContains("'features.0.weight' is 4x1x3x3 in the file but 8x1x3x3",
                            models.load, bare,
                            {arch = 'vgg11', width = 1 / 8, batchnorm = true,
                             head = 'classic', hidden = 8})
  os.remove(bare)
end

function TestVGG11:test_state_spec_is_the_built_models_state_dict()
  for _, cfg in ipairs({{arch = 'vgg11', width = 1 / 16},
                        {arch = 'vgg11', width = 1 / 8, batchnorm = true, head = 'classic',
                         hidden = 8, in_channels = 3, input_size = 64, first_kernel = 5}}) do
    local spec, sd = models.state_spec(cfg), models.build(cfg):state_dict()
    lu.assertEquals(#spec, #sd)
    for i, e in ipairs(sd) do
      lu.assertEquals(spec[i].name, e.name)
      lu.assertEquals(spec[i].size, e.tensor:size(), e.name)
    end
  end
end

-- metadata that asks for a huge network: the file's tensors are checked against it before
-- anything is built, so the error is immediate and names the file
function TestVGG11:test_load_checks_the_file_against_the_architecture_before_building()
  local files = require('agop.files')
  local json = require('agop.json')
  local m = models.vgg11{width = 1 / 16}
  local path = os.tmpname()
  local function with_config(cfg, tensors)
    files.save_safetensors(path, tensors or m:state_dict(),
                         {format = 'agoplua', arch = 'vgg11', config = json.encode(cfg)})
  end
  local _, before = agop.memory()
  -- 64 times VGG11's width: 9.7e9 parameters in one layer, 39 GB to build
  with_config({arch = 'vgg11', width = 64})
  local err = errors_with("'features.0.weight' is 4x1x3x3 in the file but 4096x1x3x3 in the "
                          .. "config's architecture", models.load, path)
  lu.assertStrContains(err, 'models.load: ' .. path)
  with_config({arch = 'vgg11', width = 1 / 16, head = 'classic', hidden = 1 << 30})
  errors_with('the hidden linear layer would hold 1.15e+18 parameters, over the limit of '
              .. '1099511627776', models.load, path)
  with_config({arch = 'vgg11', width = 1e9})
  errors_with('over the limit of 1099511627776', models.load, path)
  local _, after = agop.memory()
  lu.assertTrue(after - before < 100 * 1024 * 1024,
    string.format('resident memory grew by %d MiB', (after - before) // 1048576))
  -- names: a missing and an unexpected tensor
  local sd = m:state_dict()
  with_config(m.config, {table.unpack(sd, 2)})
  errors_with("the config's architecture has 'features.0.weight' (4x1x3x3), the file does not",
              models.load, path)
  local more = {table.unpack(sd)}
  more[#more + 1] = {name = 'extra.weight', tensor = agop.zeros(2)}
  with_config(m.config, more)
  errors_with("unexpected 'extra.weight': not in the config's architecture", models.load, path)
  with_config(m.config)
  lu.assertTrue(models.load(path).convs[3].weight:equal(m.convs[3].weight))
  os.remove(path)
end
