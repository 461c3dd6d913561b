-- Speed figures (`make bench [BATCH=N]`; never part of `make test`).
--
-- VGG11's conv stack (1 input channel, 32x32, linear head, width 1), 2 threads, in one run:
--   * one training step (forward + backward + SGD with momentum) at batch N, images/s:
--     the median of the timed steps, with a profile by module type;
--   * the same network and step in PyTorch (when /usr/bin/python3 has torch), same batch
--     and threads, its median step too; the ratio of the two; each one's CPU time per
--     step (all threads), which a shared machine moves less than the wall time;
--   * peak resident memory after training (VmHWM), both;
--   * every conv layer's forward, input gradient (dX) and weight gradient (dW) on the
--     engine's path (oneDNN plans where built in) and on the im2col + OpenBLAS reference
--     path, in ms and GFLOP/s, against the FMA peak measured here (agop.fma_peak);
--   * the patch-AGOP of all 8 conv layers over the first N MNIST training images (random
--     images when the data is missing), and the same in PyTorch (hooks and 10 per-class
--     autograd.grad calls) on the same weights and images, with their per-layer agreement.
--   * with --sketch: the sketched AGOP ({probes = k}, seed 1) for k = 1, 2, 4, 8, its time
--     and its relative Frobenius error against the exact AGOP, per layer.
--   agoplua tests/bench.lua [--batch 64] [--steps 7] [--warmup 2] [--threads 2] [--agop 1000]
--                           [--no-torch] [--no-layers] [--sketch]
local agop = require('agop')
local nn = require('agop.nn')
local optim = require('agop.optim')
local models = require('agop.models')

local cfg = {batch = 64, steps = 7, warmup = 2, threads = 2, torch = true, agop = 1000,
             layers = true, sketch = false}
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == '--no-torch' then
      cfg.torch = false
    elseif a == '--no-layers' then
      cfg.layers = false
    elseif a == '--sketch' then
      cfg.sketch = true
    elseif a:match('^%-%-') and cfg[a:sub(3)] ~= nil and arg[i + 1] then
      cfg[a:sub(3)] = assert(tonumber(arg[i + 1]), a .. ' expects a number')
      i = i + 1
    else
      error('bench: unknown argument ' .. a ..
            ' (use --batch N --steps N --warmup N --threads N --agop N --no-torch '
            .. '--no-layers --sketch)', 0)
    end
    i = i + 1
  end
end

agop.set_threads(cfg.threads)
local B = cfg.batch
local now = agop.time

local function line(name, secs, images, gflop, note)
  print(string.format('%-38s %10s %11s %9s  %s', name,
                      secs and string.format('%.1f ms', secs * 1e3) or '',
                      images and string.format('%.1f', images) or '',
                      gflop and string.format('%.1f', gflop) or '', note or ''))
end

local blas = agop.blas_info and agop.blas_info() or {}
print(string.format('agoplua bench: VGG11 conv stack, 1x32x32 input, linear head, width 1, '
                    .. 'batch %d, %d threads (OpenBLAS %s, OPENBLAS_CORETYPE %s)', B,
                    cfg.threads, blas.core or '?', os.getenv('OPENBLAS_CORETYPE') or 'unset'))
print(string.format('conv backend %s (oneDNN %s); %d warm-up steps, then the median of %d '
                    .. 'timed steps', nn.conv_backend(), agop.have_dnnl() and 'built in'
                    or 'not built in', cfg.warmup, cfg.steps))
print()

---------------------------------------------------------------------------------------
-- 1. the training step
---------------------------------------------------------------------------------------
local g = agop.Generator(1)
local model = models.vgg11{in_channels = 1, num_classes = 10, input_size = 32, width = 1,
                           head = 'linear', generator = g}
model.convs[1].need_gradInput = false -- nobody needs d loss / d image (PyTorch skips it)
local crit = nn.CrossEntropyLoss()
local params, grads = model:flatten_parameters()
local opt = optim.SGD{lr = 0.01, momentum = 0.9}
local x = agop.randn(g, B, 1, 32, 32)
local labels = agop.zeros(B)
for i = 1, B do labels:set(i, g:random(10) - 1) end

local function median(t)
  local c = {table.unpack(t)}
  table.sort(c)
  local n = #c
  return n % 2 == 1 and c[(n + 1) // 2] or (c[n // 2] + c[n // 2 + 1]) / 2
end

local function train_step()
  local c0, t0 = os.clock(), now()
  model:zeroGrad()
  local out = model:forward(x)
  crit:forward(out, labels)
  local t1 = now()
  model:backward(x, crit:backward(out, labels))
  local t2 = now()
  opt:step(params, grads)
  local t3 = now()
  return t3 - t0, t1 - t0, t2 - t1, t3 - t2, os.clock() - c0
end
for _ = 1, cfg.warmup do train_step() end
local steps, fwds, bwds, opts, cpus = {}, {}, {}, {}, {}
for i = 1, cfg.steps do steps[i], fwds[i], bwds[i], opts[i], cpus[i] = train_step() end
local t_step, t_fwd, t_bwd, t_opt = median(steps), median(fwds), median(bwds), median(opts)
-- CPU time of a step, all threads: on a shared machine it moves less than the wall time
-- (but counts spinning threads as work)
local c_step = median(cpus)
local hwm = select(1, agop.memory())

-- a profile by module type: every leaf module's forward and backward timed (medians over
-- 3 steps, of the sums per step)
local prof_rows = {}
do
  local sums, order, wrapped = {}, {}, {}
  local function wrap(m)
    if m.modules then return end -- containers: their leaves are timed
    local name = nn.typename(m)
    if not sums[name] then
      sums[name] = {}
      order[#order + 1] = name
    end
    for _, method in ipairs{'forward', 'backward'} do
      local f = m[method]
      m[method] = function(self, ...)
        local t0 = now()
        local r = f(self, ...)
        sums[name].cur = (sums[name].cur or 0) + now() - t0
        return r
      end
    end
    wrapped[#wrapped + 1] = m
  end
  model:apply(wrap)
  for _ = 1, 3 do
    for _, name in ipairs(order) do sums[name].cur = 0 end
    local _, _, _, dt_opt = train_step()
    for _, name in ipairs(order) do
      local e = sums[name]
      e[#e + 1] = e.cur
    end
    sums.SGD = sums.SGD or {}
    sums.SGD[#sums.SGD + 1] = dt_opt
  end
  order[#order + 1] = 'SGD'
  for _, m in ipairs(wrapped) do m.forward, m.backward = nil, nil end
  for _, name in ipairs(order) do
    local e = sums[name]
    e.cur = nil
    prof_rows[#prof_rows + 1] = {name, median(e)}
  end
end

local flops_fwd, flops_train = 0, 0
local conv_shapes = {} -- {ci, co, s} per conv
do
  local s = 32
  for l, c in ipairs(model.convs) do
    local macs = B * s * s * c.out_channels * c.in_channels * 9
    conv_shapes[l] = {c.in_channels, c.out_channels, s}
    flops_fwd = flops_fwd + 2 * macs
    flops_train = flops_train + (l > 1 and 6 or 4) * macs
    -- the spatial size halves after convs 1, 2, 4, 6, 8 (VGG11 configuration A)
    if l == 1 or l == 2 or l == 4 or l == 6 or l == 8 then s = s // 2 end
  end
end

---------------------------------------------------------------------------------------
-- 3. PyTorch, when available
---------------------------------------------------------------------------------------
local torch_res
local function have_torch()
  if not cfg.torch then return false end
  local ok = os.execute('/usr/bin/python3 -c "import torch" >/dev/null 2>&1')
  return ok == true or ok == 0
end

if have_torch() then
  local py = [[
import resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[4]))
torch.manual_seed(1)
B, steps, warm = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
layers, c = [], 1
for v in [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M']:
    if v == 'M':
        layers.append(torch.nn.MaxPool2d(2, 2))
    else:
        layers += [torch.nn.Conv2d(c, v, 3, padding=1), torch.nn.ReLU(inplace=True)]
        c = v
net = torch.nn.Sequential(*layers, torch.nn.Flatten(), torch.nn.Linear(512, 10))
for m in net.modules():
    if isinstance(m, torch.nn.Conv2d):
        torch.nn.init.kaiming_normal_(m.weight, nonlinearity='relu')
        torch.nn.init.zeros_(m.bias)
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
lossf = torch.nn.CrossEntropyLoss()
x, y = torch.randn(B, 1, 32, 32), torch.randint(0, 10, (B,))
def step():
    opt.zero_grad()
    loss = lossf(net(x), y)
    loss.backward()
    opt.step()
for _ in range(warm):
    step()
ts, cs = [], []
for _ in range(steps):
    t, c = time.perf_counter(), time.process_time()
    step()
    ts.append(time.perf_counter() - t)
    cs.append(time.process_time() - c)
def med(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
print("torch", torch.__version__, med(ts), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, med(cs))
]]
  local path = os.tmpname()
  local f = assert(io.open(path, 'w'))
  f:write(py)
  f:close()
  local p = io.popen(string.format('/usr/bin/python3 %s %d %d %d %d 2>&1', path, B, cfg.steps,
                                   cfg.warmup, cfg.threads))
  local out = p:read('a')
  p:close()
  os.remove(path)
  local ver, dt, mem, cpu = out:match('torch (%S+) (%S+) (%S+) (%S+)')
  if ver then
    torch_res = {version = ver, step = tonumber(dt), mem = tonumber(mem), cpu = tonumber(cpu)}
  else
    print('(PyTorch run failed: ' .. out:gsub('\n', ' '):sub(1, 300) .. ')')
  end
end

---------------------------------------------------------------------------------------
-- the table
---------------------------------------------------------------------------------------
print(string.format('%-38s %10s %11s %9s', '', 'time/step', 'images/s', 'GFLOP/s'))
line('agoplua train step (fwd+bwd+SGD)', t_step, B / t_step, flops_train / t_step / 1e9)
line('  forward (+ loss)', t_fwd, B / t_fwd, flops_fwd / t_fwd / 1e9)
line('  backward', t_bwd, nil, (flops_train - flops_fwd) / t_bwd / 1e9)
line('  SGD step (' .. params:numel() .. ' params)', t_opt)
line('  CPU time, all threads', c_step)
if torch_res then
  line('PyTorch ' .. torch_res.version .. ' train step', torch_res.step, B / torch_res.step,
       flops_train / torch_res.step / 1e9)
  line('  CPU time, all threads', torch_res.cpu)
end
print()
if torch_res then
  print(string.format('images/s: agoplua / PyTorch = %.2fx (batch %d); CPU time per step: '
                      .. 'PyTorch / agoplua = %.2fx', torch_res.step / t_step, B,
                      torch_res.cpu / c_step))
end
print(string.format('peak memory after training (VmHWM): agoplua %.0f MiB%s', hwm / 2 ^ 20,
                    torch_res and string.format(', PyTorch %.0f MiB', torch_res.mem / 2 ^ 20)
                    or ''))
print(string.format('conv FLOPs per step: %.1f GFLOP (forward %.1f)', flops_train / 1e9,
                    flops_fwd / 1e9))
print()
print('step profile by module type (forward + backward, ms per step, median of 3):')
for _, r in ipairs(prof_rows) do
  print(string.format('  %-20s %8.1f ms  %5.1f %%', r[1], r[2] * 1e3, 100 * r[2] / t_step))
end

---------------------------------------------------------------------------------------
-- every conv layer alone, against the measured FMA peak
---------------------------------------------------------------------------------------
if cfg.layers then
  local peak, isa = agop.fma_peak(cfg.threads, 1.0)
  print()
  print(string.format('conv layers at batch %d: ms and GFLOP/s (%% of the %s FMA peak measured '
                      .. 'here, %.0f GFLOP/s on %d threads); im2col x = the reference path\'s '
                      .. 'time / this one', B, isa, peak, cfg.threads))
  print('  (GFLOP/s count a direct convolution\'s 2*B*Ho*Wo*Co*Ci*9 flops: Winograd does '
        .. 'fewer, so it can pass the peak)')
  print(string.format('  %-22s %-26s %8s %8s %6s %9s %6s', 'layer', 'engine path', 'pass', 'ms',
                      'GF/s', '% peak', 'im2col x'))
  local lg = agop.Generator(5)
  local function timed(reps, f)
    f()
    local ts = {}
    for i = 1, reps do
      local t0 = now()
      f()
      ts[i] = now() - t0
    end
    return median(ts)
  end
  for l, c in ipairs(model.convs) do
    local ci, co, s = table.unpack(conv_shapes[l])
    local xin = agop.randn(lg, B, ci, s, s)
    local w, b = c.weight, c.bias
    local gy = agop.randn(lg, B, co, s, s)
    local gw, gb = agop.zeros(w:size()), agop.zeros(co)
    local plan = c:_plan(xin, agop.conv2d_shape(xin, w, c.stride, c.padding))
    local y = plan and plan:forward(xin, w, b)
    local gx = agop.zeros(B, ci, s, s)
    local flops = 2 * B * s * s * co * ci * 9
    local passes = {
      {'forward', plan and function() plan:forward(xin, w, b, y) end,
       function() agop.conv2d(xin, w, b, 1, 1) end},
      {'dX', plan and function() plan:backward(xin, w, gy, nil, nil, gx) end,
       function() agop.conv2d_backward(xin, w, gy, 1, 1, nil, nil, true) end},
      {'dW', plan and function() plan:backward(xin, w, gy, gw, gb, false) end,
       function() agop.conv2d_backward(xin, w, gy, 1, 1, gw, gb, false) end},
    }
    for i, ps in ipairs(passes) do
      local t_ref = timed(2, ps[3])
      local t = ps[2] and timed(5, ps[2]) or t_ref
      local info = plan and plan:info() or {} -- after the pass ran: plans make passes on use
      local impl = ({info.forward, info.input_grad, info.weight_grad})[i] or 'im2col'
      print(string.format('  %-22s %-26s %8s %8.2f %6.0f %8.1f%% %6.1fx',
                          i == 1 and string.format('conv%d %d->%d %dx%d', l, ci, co, s, s) or '',
                          impl, ps[1], t * 1e3, flops / t / 1e9, 100 * flops / t / 1e9 / peak,
                          t_ref / t))
    end
    xin, gy, y, gx = nil, nil, nil, nil
    collectgarbage()
  end
end

---------------------------------------------------------------------------------------
-- patch-AGOP of all layers (DESIGN §3 fast path) against PyTorch
---------------------------------------------------------------------------------------
if cfg.agop > 0 then
  local features = require('agop.features')
  local N = math.floor(cfg.agop)
  local ok_data, set = pcall(require('agop.data').load, 'mnist', 'train', {limit = N})
  local images = ok_data and set.images or agop.randn(agop.Generator(2), N, 1, 32, 32)
  local amodel = models.vgg11{generator = agop.Generator(1)}
  collectgarbage()
  local t0 = agop.time()
  local G = features.agop(amodel, images, {batch = 100})
  local t_agop = agop.time() - t0
  local hwm2 = agop.memory()
  print()
  print(string.format('patch-AGOP, 8 layers, %d %s images, full-width VGG11 (random weights):', N,
    ok_data and 'MNIST' or 'random'))
  print(string.format('  agoplua features.agop      %8.2f s   (peak memory so far %.0f MiB)', t_agop, hwm2 / 2 ^ 20))
  if have_torch() then
    local d = os.tmpname()
    os.remove(d)
    os.execute("mkdir -p '" .. d .. "'")
    agop.save(d .. '/images.npy', images)
    for _, e in ipairs(amodel:state_dict()) do agop.save(d .. '/' .. e.name .. '.npy', e.tensor) end
    for l = 1, 8 do agop.save(string.format('%s/g%d.npy', d, l), G[l]) end
    local py = d .. '/agop_ref.py'
    local f = assert(io.open(py, 'w'))
    f:write([[
import sys, time, os, resource, numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
d, B = sys.argv[1], 100
X = torch.from_numpy(np.load(d + '/images.npy'))
cfg = [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M']
layers, c = [], 1
for v in cfg:
    if v == 'M': layers.append(torch.nn.MaxPool2d(2, 2))
    else: layers += [torch.nn.Conv2d(c, v, 3, padding=1), torch.nn.ReLU()]; c = v
model = torch.nn.Sequential()
model.add_module('features', torch.nn.Sequential(*layers))
model.add_module('flatten', torch.nn.Flatten())
model.add_module('classifier', torch.nn.Sequential(torch.nn.Linear(512, 10)))
model.load_state_dict({f[:-4]: torch.from_numpy(np.load(d + '/' + f)) for f in os.listdir(d)
                       if f.startswith('features.') or f.startswith('classifier.')})
model.eval()
convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
outs = []
for m in convs: m.register_forward_hook(lambda mod, i, o: outs.append(o))
n = X.shape[0]
S = [torch.zeros(m.out_channels, m.out_channels, dtype=torch.float64) for m in convs]
t0 = time.time()
for s in range(0, n, B):
    outs.clear()
    logits = model(X[s:s + B])
    for c in range(logits.shape[1]):
        gs = torch.autograd.grad(logits[:, c].sum(), outs, retain_graph=True)
        for l, g in enumerate(gs):
            m = g.transpose(0, 1).reshape(g.shape[1], -1)
            S[l] += (m @ m.t()).double()
G = [m.weight.detach().reshape(m.out_channels, -1).double().t() @ S[l] @
     m.weight.detach().reshape(m.out_channels, -1).double() / n for l, m in enumerate(convs)]
dt = time.time() - t0
agree = []
for l in range(len(convs)):
    ours = np.load(d + '/g%d.npy' % (l + 1)).astype(np.float64).ravel()
    ref = G[l].numpy().ravel()
    agree.append('%.8f/%.1e' % (np.corrcoef(ours, ref)[0, 1],
                                np.linalg.norm(ours - ref) / np.linalg.norm(ref)))
print('torch', dt, ','.join(agree), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
]])
    f:close()
    local p = io.popen(string.format("/usr/bin/python3 '%s' '%s' %d 2>&1", py, d, cfg.threads))
    local out = p:read('a')
    p:close()
    os.execute("rm -rf '" .. d .. "'")
    local dt, agree, mem = out:match('torch (%S+) (%S+) (%S+)')
    if dt then
      print(string.format('  PyTorch hooks + autograd   %8.2f s   (peak memory %.0f MiB)', tonumber(dt), tonumber(mem) / 2 ^ 20))
      print(string.format('  agoplua time / PyTorch time: %.3f (PyTorch / agoplua = %.2fx)',
        t_agop / tonumber(dt), tonumber(dt) / t_agop))
      print('  per layer, corr(ours, PyTorch) / relative Frobenius difference:')
      local l = 0
      for a in agree:gmatch('[^,]+') do
        l = l + 1
        print(string.format('    conv%d  %s', l, a:gsub('/', '  /  ')))
      end
    else
      print('  (PyTorch AGOP run failed: ' .. out:gsub('\n', ' '):sub(1, 300) .. ')')
    end
  end
  if cfg.sketch then
    print()
    print('sketched AGOP ({probes = k}, seed 1): time, and per layer |G_k - G|_F / |G|_F:')
    local function frob(t) return math.sqrt((t * t):sum()) end
    for _, k in ipairs{1, 2, 4, 8} do
      local t1 = agop.time()
      local Gk = features.agop(amodel, images, {batch = 100, probes = k, seed = 1})
      local dt = agop.time() - t1
      local errs = {}
      for l = 1, 8 do errs[l] = string.format('%.3f', frob(Gk[l] - G[l]) / frob(G[l])) end
      print(string.format('  k = %d  %7.2f s  %s', k, dt, table.concat(errs, ' ')))
    end
  end
end
