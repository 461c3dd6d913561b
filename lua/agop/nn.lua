-- agop.nn - neural network modules with Torch7's contract.
--
--   local nn = require('agop.nn')
--   local net = nn.Sequential()
--     :add(nn.Conv2d(1, 8, 3, {padding = 1})):add(nn.ReLU()):add(nn.MaxPool2d(2))
--     :add(nn.Flatten()):add(nn.Linear(8 * 4 * 4, 10))
--   local y = net:forward(x)                 -- x: (B, 1, 8, 8)
--   local gx = net:backward(x, gy)           -- fills gradInput, adds into gradients
--   local params, grads = net:flatten_parameters()   -- one flat buffer each
--
-- A module keeps `output` and `gradInput`; forward(input) -> output;
-- updateGradInput(input, gradOutput) -> gradInput; accGradParameters(input, gradOutput)
-- adds into gradWeight / gradBias; backward does both. Parameter gradients accumulate
-- until zeroGrad(). Every check raises a Lua error naming the module ("nn.Conv2d: ...");
-- a Sequential prefixes the failing child ("Sequential[3] (nn.Conv2d): ...").
--
-- Files: the class system and nn.Module in lua/agop/nn/module.lua, nn.Sequential in
-- nn/sequential.lua, nn.Conv2d and its backends in nn/conv.lua, the other layers in
-- nn/layers.lua, the loss in nn/loss.lua, shared checks in nn/helpers.lua.
-- A new layer: a class made by nn.class(name, nn.Module) in one of those files (or a
-- new one required below), with updateOutput / updateGradInput [/ accGradParameters].
local nn = require('agop.nn.module')
require('agop.nn.sequential')
require('agop.nn.conv')
require('agop.nn.layers')
require('agop.nn.loss')

return nn
