-- A small training run for test_train.lua, in its own process so that it can be killed.
--   agoplua tests/lua/train_child.lua OUT_DIR [kill_at_step] [resume]
-- Writes OUT_DIR/final.npy (the flat parameters) when training ends.
local agop = require('agop')
local nn = require('agop.nn')
local data = require('agop.data')
local train = require('agop.train')

local out, kill_at, resume = arg[1], tonumber(arg[2] or '0'), arg[3] == 'resume'
agop.manual_seed(3)
local g = agop.Generator(3)
local model = nn.Sequential()
  :add(nn.Conv2d(1, 4, 3, {padding = 1, generator = g})):add(nn.ReLU()):add(nn.MaxPool2d(2))
  :add(nn.Conv2d(4, 8, 3, {padding = 1, generator = g})):add(nn.ReLU()):add(nn.MaxPool2d(2))
  :add(nn.Flatten()):add(nn.Dropout(0.3)):add(nn.Linear(8 * 8 * 8, 10, {generator = g}))
local tr = data.load('mnist', 'train', {limit = 500})
local te = data.load('mnist', 'test', {limit = 200})

local function die(step)
  if step == kill_at then
    local f = assert(io.open('/proc/self/stat'))
    local pid = f:read('n')
    f:close()
    io.stdout:flush()
    os.execute('kill -KILL ' .. pid) -- a real kill: no cleanup, no final checkpoint
  end
end

local r = train.fit(model, tr, te, {epochs = 3, batch = 64, lr = 0.05, out = out,
  resume = resume, quiet = true, on_step = kill_at > 0 and die or false, log_every = 4})
local params = model:flatten_parameters()
agop.save(out .. '/final.npy', params)
print(string.format('done steps=%d acc=%.4f resumed=%s', r.steps, r.final_test_acc, tostring(r.resumed_from)))
