-- Speed figures (`make bench`; never part of `make test`).
--
-- VGG11's conv stack (1 input channel, 32x32, linear head, width 1), batch 64, 2 threads:
--   * one training step (forward + backward + SGD with momentum), in images/s;
--   * the same step's GEMMs alone: cblas_sgemm (agop.mm) on the shapes of every conv
--     layer's forward GEMM (M=Co, N=B*Ho*Wo, K=Ci*9) and its two backward GEMMs (weight
--     gradient M=Co, N=Ci*9, K=B*Ho*Wo; input gradient M=Ci*9, N=B*Ho*Wo, K=Co; not for
--     the first layer), which bounds what an im2col engine can reach;
--   * the same network in PyTorch (when /usr/bin/python3 has torch), same batch and threads;
--   * peak resident memory.
--   * the patch-AGOP of all 8 conv layers over the first N MNIST training images (random
--     images when the data is missing), and the same in PyTorch (hooks and 10 per-class
--     autograd.grad calls) on the same weights and images, with their agreement.
--   agoplua tests/bench.lua [--batch 64] [--steps 5] [--warmup 2] [--threads 2] [--agop 1000]
--                           [--no-torch]
local agop = require('agop')
local nn = require('agop.nn')
local optim = require('agop.optim')
local models = require('agop.models')

local cfg = {batch = 64, steps = 5, warmup = 2, threads = 2, torch = true, agop = 1000}
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == '--no-torch' then
      cfg.torch = false
    elseif a:match('^%-%-') and cfg[a:sub(3)] ~= nil and arg[i + 1] then
      cfg[a:sub(3)] = assert(tonumber(arg[i + 1]), a .. ' expects a number')
      i = i + 1
    else
      error('bench: unknown argument ' .. a ..
            ' (use --batch N --steps N --warmup N --threads N --agop N --no-torch)', 0)
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
                    .. 'batch %d, %d threads (OpenBLAS %s)', B, cfg.threads,
                    blas.core or '?'))
print(string.format('%d warm-up steps, then the mean of %d timed steps', cfg.warmup, cfg.steps))
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

local t_fwd, t_bwd, t_opt = 0, 0, 0
local function train_step(timed)
  local t0 = now()
  model:zeroGrad()
  local out = model:forward(x)
  crit:forward(out, labels)
  local t1 = now()
  model:backward(x, crit:backward(out, labels))
  local t2 = now()
  opt:step(params, grads)
  local t3 = now()
  if timed then
    t_fwd, t_bwd, t_opt = t_fwd + (t1 - t0), t_bwd + (t2 - t1), t_opt + (t3 - t2)
  end
end
for _ = 1, cfg.warmup do train_step(false) end
collectgarbage()
local t_start = now()
for _ = 1, cfg.steps do train_step(true) end
local t_step = (now() - t_start) / cfg.steps
t_fwd, t_bwd, t_opt = t_fwd / cfg.steps, t_bwd / cfg.steps, t_opt / cfg.steps

---------------------------------------------------------------------------------------
-- 2. the GEMMs of the same step, alone
---------------------------------------------------------------------------------------
local gemms = {} -- {M, N, K, what}
local flops_fwd, flops_train = 0, 0
do
  local s = 32
  for l, c in ipairs(model.convs) do
    local K = c.in_channels * c.kernel_size * c.kernel_size
    local N, M = B * s * s, c.out_channels
    gemms[#gemms + 1] = {M, N, K, 'conv' .. l .. ' fwd'}
    gemms[#gemms + 1] = {M, K, N, 'conv' .. l .. ' dW'}
    flops_fwd = flops_fwd + 2 * M * N * K
    flops_train = flops_train + 4 * M * N * K
    if l > 1 then
      gemms[#gemms + 1] = {K, N, M, 'conv' .. l .. ' dX'}
      flops_train = flops_train + 2 * M * N * K
    end
    -- the spatial size halves after convs 1, 2, 4, 6, 8 (VGG11 configuration A)
    if l == 1 or l == 2 or l == 4 or l == 6 or l == 8 then s = s // 2 end
  end
end

local t_gemm, gemm_rows = 0, {}
for _, e in ipairs(gemms) do
  local M, N, K = e[1], e[2], e[3]
  local a, b = agop.randn(g, M, K), agop.randn(g, K, N)
  agop.mm(a, b) -- warm-up
  local reps = 3
  local t0 = now()
  for _ = 1, reps do agop.mm(a, b) end
  local dt = (now() - t0) / reps
  t_gemm = t_gemm + dt
  gemm_rows[#gemm_rows + 1] = {e[4], M, N, K, dt}
  a, b = nil, nil
  collectgarbage()
end

local hwm = select(1, agop.memory())

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
t = time.perf_counter()
for _ in range(steps):
    step()
dt = (time.perf_counter() - t) / steps
print("torch", torch.__version__, dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
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
  local ver, dt, mem = out:match('torch (%S+) (%S+) (%S+)')
  if ver then
    torch_res = {version = ver, step = tonumber(dt), mem = tonumber(mem)}
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
line('conv GEMMs alone (sgemm bound)', t_gemm, B / t_gemm, flops_train / t_gemm / 1e9,
     #gemms .. ' GEMMs')
if torch_res then
  line('PyTorch ' .. torch_res.version .. ' train step', torch_res.step, B / torch_res.step,
       flops_train / torch_res.step / 1e9)
end
print()
print(string.format('train step / GEMM-only bound: %.2fx (1.00x would be all time in sgemm)',
                    t_step / t_gemm))
if torch_res then
  print(string.format('agoplua / PyTorch step time:  %.2fx (images/s: %.2fx of PyTorch)',
                      t_step / torch_res.step, torch_res.step / t_step))
end
print(string.format('peak memory (VmHWM): agoplua %.0f MiB%s', hwm / 2 ^ 20,
                    torch_res and string.format(', PyTorch %.0f MiB', torch_res.mem / 2 ^ 20)
                    or ''))
print(string.format('conv FLOPs per step: %.1f GFLOP (forward %.1f)', flops_train / 1e9,
                    flops_fwd / 1e9))
print()
print('GEMM shapes (M x N x K):')
for _, r in ipairs(gemm_rows) do
  print(string.format('  %-12s %5d x %6d x %5d  %8.2f ms  %6.1f GFLOP/s', r[1], r[2], r[3],
                      r[4], r[5] * 1e3, 2 * r[2] * r[3] * r[4] / r[5] / 1e9))
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
worst = 1.0
for l in range(len(convs)):
    ours = np.load(d + '/g%d.npy' % (l + 1)).astype(np.float64).ravel()
    worst = min(worst, np.corrcoef(ours, G[l].numpy().ravel())[0, 1])
print('torch', dt, worst, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
]])
    f:close()
    local p = io.popen(string.format("/usr/bin/python3 '%s' '%s' %d 2>&1", py, d, cfg.threads))
    local out = p:read('a')
    p:close()
    os.execute("rm -rf '" .. d .. "'")
    local dt, worst, mem = out:match('torch (%S+) (%S+) (%S+)')
    if dt then
      print(string.format('  PyTorch hooks + autograd   %8.2f s   (peak memory %.0f MiB)', tonumber(dt), tonumber(mem) / 2 ^ 20))
      print(string.format('  agoplua / PyTorch time: %.2fx; lowest per-layer corr(ours, PyTorch) = %.8f',
        t_agop / tonumber(dt), tonumber(worst)))
    else
      print('  (PyTorch AGOP run failed: ' .. out:gsub('\n', ' '):sub(1, 300) .. ')')
    end
  end
end
