-- agop.train: the training loop - shuffled mini-batches, an optimizer and schedule, test
-- accuracy after every epoch, train_log.csv, atomic checkpoints and exact resume.
--
--   local result = train.fit(model, train_set, test_set, {epochs = 2, lr = 0.05, out = dir})
--
-- A checkpoint (out/checkpoint.safetensors) is written after every epoch and when the
-- run is interrupted (Ctrl-C): model parameters, optimizer buffers, the shuffling and
-- default generators' states, the epoch and the batches done. `resume = true` continues
-- from it and ends with exactly the weights of an uninterrupted run (same seed, same
-- thread count). The checkpoint is checked whole before any of it is applied (parameters,
-- optimizer buffers, generator states, epoch, batch and step in range for this run): a
-- bad one is an error naming the field, and the model and the folder stay as they were.
local agop = require('agop')
local util = require('agop.util')
local optim = require('agop.optim')
local json = require('agop.json')
local dist = require('agop.dist')
local data = require('agop.data')

local train = {}

train.defaults = {
  epochs = 2, batch = 64, optimizer = 'sgd', lr = 0.05, momentum = 0.9,
  weight_decay = 5e-4, nesterov = false, betas = {0.9, 0.999}, eps = 1e-8,
  schedule = 'cosine', warmup = 0, min_lr = 0, step_every = 1, step_gamma = 0.1,
  seed = 1, threads = 0, out = '', resume = false, log_every = 50, eval_batch = 500,
  progress = 'auto', checkpoint = true, max_steps = 0, quiet = false,
  on_step = false, on_epoch = false,
}

local function hex(s) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end)) end
local function unhex(h) return (h:gsub('..', function(x) return string.char(tonumber(x, 16)) end)) end

--- Accuracy (0..1) and mean cross-entropy of `model` on a data set, in evaluation mode.
function train.evaluate(model, set, batch)
  batch = batch or 500
  local was_training = model.training
  model:evaluate()
  local n = set.images:size(1)
  local correct, loss_sum = 0, 0
  local rank, size = dist.rank(), dist.size() -- under mpirun: every size-th batch, summed
  for i = 1 + rank * batch, n, batch * size do
    local m = math.min(batch, n - i + 1)
    local x = set.images:narrow(1, i, m)
    local y = set.labels:narrow(1, i, m)
    local out = model:forward(x)
    local loss = agop.cross_entropy(out, y)
    loss_sum = loss_sum + loss * m
    correct = correct + train.count_correct(out, y)
  end
  if was_training then model:train() end
  if size > 1 then correct, loss_sum = table.unpack(dist.allreduce({correct, loss_sum})) end
  return correct / n, loss_sum / n
end

--- Number of rows of `logits` whose argmax equals the label (labels hold 0-based ids).
function train.count_correct(logits, labels)
  local pred = logits:argmax(2)
  local diff = (pred - 1 - labels):abs()
  return pred:numel() - (diff:clamp(0, 1)):sum()
end

local function make_optimizer(cfg, total_steps)
  local sched
  if cfg.schedule == 'cosine' then
    sched = optim.schedule.cosine{total = total_steps, min_lr = cfg.min_lr, warmup = cfg.warmup}
  elseif cfg.schedule == 'step' then
    sched = optim.schedule.step{every = cfg.step_every, gamma = cfg.step_gamma, warmup = cfg.warmup}
  elseif cfg.schedule == 'constant' or cfg.schedule == 'none' then
    sched = optim.schedule.constant{warmup = cfg.warmup}
  else
    error(string.format("train: unknown schedule '%s' (cosine, step, constant)", tostring(cfg.schedule)), 0)
  end
  if cfg.optimizer == 'sgd' then
    return optim.SGD{lr = cfg.lr, momentum = cfg.momentum, weight_decay = cfg.weight_decay,
      nesterov = cfg.nesterov, schedule = sched}
  elseif cfg.optimizer == 'adam' then
    return optim.Adam{lr = cfg.lr, betas = cfg.betas, eps = cfg.eps,
      weight_decay = cfg.weight_decay, schedule = sched}
  end
  error(string.format("train: unknown optimizer '%s' (sgd, adam)", tostring(cfg.optimizer)), 0)
end

local LOG_FIELDS = {'epoch', 'step', 'loss', 'train_acc', 'test_acc', 'lr', 'seconds', 'img_s'}

local function write_log(path, rows)
  local lines = {table.concat(LOG_FIELDS, ',')}
  for _, r in ipairs(rows) do
    local cells = {}
    for i, k in ipairs(LOG_FIELDS) do
      local v = r[k]
      if v == nil then cells[i] = ''
      elseif math.type(v) == 'integer' then cells[i] = tostring(v)
      else cells[i] = string.format('%.6g', v) end
    end
    lines[#lines + 1] = table.concat(cells, ',')
  end
  util.write_file(path, table.concat(lines, '\n') .. '\n')
end

local function save_checkpoint(path, params, opt, st, shuffle_state)
  local tensors = {{name = 'params', tensor = params}}
  local ostate = opt:state()
  local bufnames = util.keys(ostate.buffers or {})
  for _, k in ipairs(bufnames) do
    tensors[#tensors + 1] = {name = 'opt.' .. k, tensor = ostate.buffers[k]}
  end
  local meta = {
    format = 'agoplua-checkpoint-1',
    epoch = tostring(st.epoch), batch = tostring(st.batch), step = tostring(st.step),
    images = tostring(st.images),
    seconds = string.format('%.17g', st.seconds),
    rng_shuffle = hex(shuffle_state), rng_default = hex(agop.default_generator():get_state()),
    optimizer = json.encode({kind = ostate.kind, step = ostate.step, buffers = bufnames}),
    log = json.encode(st.log), test_acc = json.encode(st.test_acc),
  }
  require('agop.files').save_safetensors(path, tensors, meta)
end

-- Reads and checks a whole checkpoint against this run (params, optimizer, nb batches an
-- epoch of bs images, cfg.epochs) and returns what resume applies; changes nothing, so a
-- bad checkpoint leaves the model, the optimizer and the generators as they were.
local function read_checkpoint(path, params, opt, cfg, nb, bs)
  local function bad(msg, ...)
    error(string.format('train: cannot resume from %s: ' .. msg, path, ...), 0)
  end
  local ok, tensors, meta = pcall(require('agop.files').load_safetensors, path)
  if not ok then bad('%s', tensors) end
  if meta.format ~= 'agoplua-checkpoint-1' then bad('not an agoplua checkpoint') end
  for _, k in ipairs({'epoch', 'batch', 'step', 'images', 'seconds', 'rng_shuffle',
                      'rng_default', 'optimizer', 'log', 'test_acc'}) do
    if type(meta[k]) ~= 'string' then bad('the metadata has no %s', k) end
  end
  local function int(k, lo, hi)
    local v = meta[k]:match('^%d+$') and math.tointeger(tonumber(meta[k]))
    if not v or v < lo or v > hi then
      bad('%s is %q, not an integer in [%d, %d] for this run', k, meta[k], lo, hi)
    end
    return v
  end
  local p = tensors.params
  if not p or p:numel() ~= params:numel() then
    bad('it holds %d parameters, the model has %d (another architecture?)',
      p and p:numel() or 0, params:numel())
  end
  if not p:isfinite() then bad('the parameters hold NaN or Inf') end
  local st = {}
  st.epoch = int('epoch', 1, cfg.epochs + 1)
  st.batch = int('batch', 0, st.epoch <= cfg.epochs and nb or 0)
  st.step = int('step', 0, math.maxinteger)
  if st.step ~= (st.epoch - 1) * nb + st.batch then
    bad('step %d is not epoch %d, batch %d of %d batches an epoch (another batch size or '
      .. 'data set?)', st.step, st.epoch, st.batch, nb)
  end
  st.images = int('images', 0, st.step * bs)
  st.seconds = tonumber(meta.seconds)
  if not st.seconds or not (st.seconds >= 0 and st.seconds < math.huge) then
    bad('seconds is %q, not a finite number >= 0', meta.seconds)
  end
  local function generator_state(k)
    local h = meta[k]
    if #h ~= 80 or h:find('[^0-9a-f]') then bad('%s is not 80 hex digits', k) end
    local s = unhex(h)
    local ok2, err = pcall(agop.Generator().set_state, agop.Generator(), s)
    if not ok2 then bad('%s: %s', k, err) end
    return s
  end
  local rng_shuffle, rng_default = generator_state('rng_shuffle'), generator_state('rng_default')
  local function decode(k, want)
    local ok2, v = pcall(json.decode, meta[k])
    if not ok2 or type(v) ~= 'table' or (want == 'array') ~= (getmetatable(v) == json.array_mt)
       and next(v) ~= nil then
      bad('%s is not a JSON %s', k, want)
    end
    return v
  end
  local o = decode('optimizer', 'object')
  if o.step ~= st.step then
    bad('the optimizer took %s steps, the run %d', tostring(o.step), st.step)
  end
  local bufs, known = {}, {params = true}
  if type(o.buffers) ~= 'table' then bad('the optimizer lists no buffers') end
  for _, k in ipairs(o.buffers) do
    if type(k) ~= 'string' then bad('the optimizer lists a buffer that is not a name') end
    bufs[k] = tensors['opt.' .. k]
    known['opt.' .. k] = true
    if not bufs[k] then bad('the optimizer buffer %s is missing', k) end
  end
  for name in pairs(tensors) do
    if not known[name] then bad('unexpected tensor %q', name) end
  end
  local ok3, ostate = pcall(opt.check_state, opt, {kind = o.kind, step = o.step, buffers = bufs},
    params:numel())
  if not ok3 then bad('%s', ostate) end
  st.log = decode('log', 'array')
  for i, r in ipairs(st.log) do
    if type(r) ~= 'table' then bad('log row %d is not an object', i) end
  end
  st.test_acc = decode('test_acc', 'array')
  if #st.test_acc ~= st.epoch - 1 then
    bad('test_acc has %d entries for %d finished epochs', #st.test_acc, st.epoch - 1)
  end
  for i, a in ipairs(st.test_acc) do
    if type(a) ~= 'number' then bad('test_acc[%d] is not a number', i) end
  end
  return {params = p, optimizer = ostate, rng_default = rng_default,
    rng_shuffle = rng_shuffle, st = st}
end

-- Applies what read_checkpoint checked: nothing here can fail.
local function apply_checkpoint(ck, params, opt, shuffle)
  params:copy(ck.params)
  opt:load_state(ck.optimizer)
  agop.default_generator():set_state(ck.rng_default)
  shuffle:set_state(ck.rng_shuffle)
  return ck.st
end

-- Progress on standard output: a line redrawn in place on a terminal, every tenth of an
-- epoch in a log, and one summary line per epoch. Silent with cfg.quiet.
local Progress = {}
Progress.__index = Progress

local function new_progress(cfg, nb, bs)
  local tty = cfg.progress == true or (cfg.progress == 'auto' and agop.isatty(1))
  return setmetatable({cfg = cfg, nb = nb, bs = bs, tty = tty and not cfg.quiet,
    quiet = cfg.quiet}, Progress)
end

-- after batch b of the epoch; ep = the epoch's running sums, t0 its start, now the time
function Progress:batch(st, b, ep, t0, now)
  local cfg, nb = self.cfg, self.nb
  if self.quiet then return end
  local rate = ep.n / math.max(now - t0, 1e-9)
  local eta = ((nb - b) + (cfg.epochs - st.epoch) * nb) * self.bs / rate
  if self.tty then
    io.stdout:write(string.format('\r  epoch %d/%d  batch %d/%d  loss %.4f  acc %5.1f%%  %.0f img/s  ETA %s   ',
      st.epoch, cfg.epochs, b, nb, ep.loss / ep.n, 100 * ep.correct / ep.n, rate, util.duration(eta)))
    io.stdout:flush()
  elseif nb >= 50 and b % (nb // 10) == 0 and b < nb then -- in a log: every tenth
    print(string.format('  epoch %d/%d  batch %d/%d  loss %.4f  acc %.1f%%  %.0f img/s  ETA %s',
      st.epoch, cfg.epochs, b, nb, ep.loss / ep.n, 100 * ep.correct / ep.n, rate,
      util.duration(eta)))
    io.stdout:flush()
  end
end

-- ends the redrawn line (before an error or the epoch's summary)
function Progress:break_line()
  if self.tty then io.stdout:write('\n') end
end

function Progress:epoch(st, ep, acc, epoch_seconds)
  self:break_line()
  if self.quiet then return end
  print(string.format('epoch %d/%d: loss %.4f  train acc %.2f%%  test acc %s  %.0f img/s  %s',
    st.epoch, self.cfg.epochs, ep.n > 0 and ep.loss / ep.n or 0 / 0,
    ep.n > 0 and 100 * ep.correct / ep.n or 0,
    acc and string.format('%.2f%%', 100 * acc) or '-', ep.n / math.max(epoch_seconds, 1e-9),
    util.duration(st.seconds)))
end

-- One optimizer step on this rank's images idx of a batch of m: forward, backward, (the
-- gradients summed over ranks), the update. Returns the batch's mean loss and the number
-- of correct predictions (over all ranks).
local function train_step(model, set, idx, m, params, grads, opt, size)
  local mr = #idx
  model:zeroGrad()
  local loss, correct = 0, 0
  if mr > 0 then
    local x = set.images:index_select(1, idx)
    local y = set.labels:index_select(1, idx)
    local out = model:forward(x)
    local gout
    loss, gout = agop.cross_entropy(out, y)
    -- the shard's mean loss weighs mr/m in the batch's: summed gradients = 1 rank's
    if size > 1 then gout:mul_(mr / m) end
    model:backward(x, gout)
    correct = train.count_correct(out, y)
  end
  if size > 1 then -- one allreduce of the flat gradient buffer per step
    dist.allreduce(grads)
    local sum = dist.allreduce({loss * mr, correct})
    loss, correct = sum[1] / m, sum[2]
  end
  return loss, correct
end

-- A run of train.fit: its configuration, model, data, optimizer, generators, progress
-- and state st (epoch, batch, step, images, seconds, log, test_acc); methods below.
local Fit = {}
Fit.__index = Fit

local function new_fit(model, train_set, test_set, cfg)
  -- under mpirun: every rank takes its shard of each global batch, and rank 0 alone
  -- prints, writes checkpoints and logs
  local rank, size = dist.rank(), dist.size()
  if rank ~= 0 then cfg.quiet = true end
  if cfg.threads > 0 then agop.set_threads(cfg.threads) end
  local n = train_set.images:size(1)
  if train_set.labels:size(1) ~= n then
    error(string.format('train: %d images but %d labels', n, train_set.labels:size(1)), 0)
  end
  local bs = cfg.batch
  local nb = (n + bs - 1) // bs
  local total = cfg.epochs * nb
  if cfg.max_steps > 0 then total = math.min(total, cfg.max_steps) end
  local params, grads = model:flatten_parameters()
  local r = setmetatable({model = model, set = train_set, test_set = test_set, cfg = cfg,
    rank = rank, size = size, n = n, bs = bs, nb = nb, params = params, grads = grads,
    opt = make_optimizer(cfg, total), shuffle = agop.Generator(cfg.seed),
    progress = new_progress(cfg, nb, bs),
    ckpt = cfg.out ~= '' and (cfg.out .. '/checkpoint.safetensors') or nil,
    st = {epoch = 1, batch = 0, step = 0, images = 0, seconds = 0, log = {}, test_acc = {}},
  }, Fit)
  if r.ckpt and rank == 0 then util.mkdir(cfg.out) end
  if cfg.resume and r.ckpt and dist.broadcast(rank == 0 and util.exists(r.ckpt)) then
    r.st = apply_checkpoint(read_checkpoint(r.ckpt, params, r.opt, cfg, nb, bs), params, r.opt,
      r.shuffle)
    r.resumed_from = r.st.epoch
    if not cfg.quiet then
      print(string.format('train: resumed from %s (epoch %d, batch %d, step %d)', r.ckpt,
        r.st.epoch, r.st.batch, r.st.step))
    end
  end
  r.last_good = r.ckpt and util.exists(r.ckpt) and r.ckpt or 'none written yet'
  return r
end

function Fit:checkpoint(epoch_state)
  if self.ckpt and self.cfg.checkpoint and self.rank == 0 then
    save_checkpoint(self.ckpt, self.params, self.opt, self.st, epoch_state)
    self.last_good = self.ckpt
  end
end

function Fit:write_log()
  if self.cfg.out ~= '' and self.rank == 0 then
    write_log(self.cfg.out .. '/train_log.csv', self.st.log)
  end
end

-- The batches of one epoch from st.batch + 1, in the order perm; ep collects the epoch's
-- sums, t0 is its start.
function Fit:run_epoch(perm, ep, t0)
  local cfg, st, opt = self.cfg, self.st, self.opt
  local seconds0 = st.seconds
  local win = {loss = 0, correct = 0, n = 0, t = t0}
  -- idx: this rank's images of the batch (all of them on one process)
  for b, idx, m in data.batch_indices(self.n, self.bs, {order = perm, from = st.batch + 1,
                                                        rank = self.rank, size = self.size}) do
    if cfg.max_steps > 0 and st.step >= cfg.max_steps then break end
    local loss, correct = train_step(self.model, self.set, idx, m, self.params, self.grads,
      opt, self.size)
    if loss ~= loss or loss == math.huge or loss == -math.huge then
      error(string.format('train: loss is %s at step %d (epoch %d, batch %d); last good checkpoint: %s',
        tostring(loss), st.step + 1, st.epoch, b, self.last_good), 0)
    end
    local lr = opt:get_lr()
    opt:step(self.params, self.grads)
    st.step, st.batch, st.images = st.step + 1, b, st.images + m
    for _, w in ipairs({win, ep}) do
      w.loss, w.correct, w.n = w.loss + loss * m, w.correct + correct, w.n + m
    end
    local now = agop.time()
    st.seconds = seconds0 + (now - t0)
    if cfg.on_step then cfg.on_step(st.step, loss, st) end
    if st.step % cfg.log_every == 0 then
      st.log[#st.log + 1] = {epoch = st.epoch, step = st.step, loss = win.loss / win.n,
        train_acc = win.correct / win.n, lr = lr, seconds = st.seconds,
        img_s = win.n / math.max(now - win.t, 1e-9)}
      win.loss, win.correct, win.n, win.t = 0, 0, 0, now
    end
    self.progress:batch(st, b, ep, t0, now)
  end
end

-- After a whole epoch: test accuracy, the log row, the summary line, the checkpoint.
function Fit:end_epoch(ep, t0)
  local cfg, st = self.cfg, self.st
  local epoch_seconds = agop.time() - t0
  local acc = self.test_set and train.evaluate(self.model, self.test_set, cfg.eval_batch) or nil
  st.test_acc[#st.test_acc + 1] = acc or -1
  st.log[#st.log + 1] = {epoch = st.epoch, step = st.step,
    loss = ep.n > 0 and ep.loss / ep.n or nil, train_acc = ep.n > 0 and ep.correct / ep.n or nil,
    test_acc = acc, lr = self.opt:get_lr(), seconds = st.seconds,
    img_s = ep.n / math.max(epoch_seconds, 1e-9)}
  self.progress:epoch(st, ep, acc, epoch_seconds)
  st.epoch, st.batch = st.epoch + 1, 0
  self:checkpoint(self.shuffle:get_state())
  self:write_log()
  if cfg.on_epoch then cfg.on_epoch(st.epoch - 1, acc, st) end
end

-- Nothing in a training step reads d loss / d image: the model's first leaf module (when it
-- has the need_gradInput switch, as nn.Conv2d and nn.Linear do) skips its input gradient,
-- VGG11's conv1 input gradient, 6 ms of a 237 ms step at B=64 on oneDNN. Returns the
-- function that puts the switch back.
local function skip_input_gradient(model)
  local m = model
  while m.modules and #m.modules > 0 do m = m.modules[1] end
  local was = m.need_gradInput
  if was ~= true then return function() end end
  m.need_gradInput = false
  return function() m.need_gradInput = was end
end


--- Trains `model` on train_set ({images = (N,C,H,W), labels = (N)}) and reports test
--- accuracy on test_set after every epoch. Returns {test_acc = {per epoch}, final_test_acc,
--- steps, seconds, img_per_s, log = rows, resumed_from = epoch or nil}.
function train.fit(model, train_set, test_set, opts)
  local r = new_fit(model, train_set, test_set, util.options(opts, train.defaults, 'train'))
  local cfg, st = r.cfg, r.st
  model:train()
  while st.epoch <= cfg.epochs and (cfg.max_steps == 0 or st.step < cfg.max_steps) do
    local epoch_state = r.shuffle:get_state()
    local perm = r.shuffle:permutation(r.n)
    local t0 = agop.time()
    local ep = {loss = 0, correct = 0, n = 0}
    -- Ctrl-C is told from other errors by the host's count of them, not by the message
    local interrupts = agop.interrupts()
    local restore_input_gradient = skip_input_gradient(model)
    local ok, err = pcall(r.run_epoch, r, perm, ep, t0)
    restore_input_gradient()
    if not ok then
      r.progress:break_line()
      if agop.interrupts() ~= interrupts then
        r:checkpoint(epoch_state)
        if r.ckpt and not cfg.quiet then
          print(string.format('train: interrupted at step %d; checkpoint written to %s (resume with --resume)', st.step, r.ckpt))
        end
      end
      error(err, 0)
    end
    if st.batch < r.nb then break end -- max_steps reached inside the epoch
    r:end_epoch(ep, t0)
  end
  r:write_log()
  return {
    test_acc = st.test_acc, final_test_acc = st.test_acc[#st.test_acc],
    steps = st.step, seconds = st.seconds,
    img_per_s = st.seconds > 0 and st.images / st.seconds or 0, images = st.images,
    log = st.log, resumed_from = r.resumed_from,
  }
end

return train
