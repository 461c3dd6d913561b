-- agop.cli: command-line options for experiment scripts.
--
--   local opt = cli.parse(arg, {
--     {'epochs', 2, 'training epochs'},
--     {'quick', false, 'a narrow net on a few thousand images (for tests)'},
--   }, {usage = 'agoplua scripts/vgg11_mnist.lua [options]', about = '...'})
--
-- Options are `--name value` or `--name=value`; a boolean default makes `--name` a flag
-- (and `--no-name` its negation). Dashes and underscores are the same in names. Values
-- take the type of their default; a fourth entry lists the values a string option
-- accepts ({'optimizer', 'sgd', 'update rule', {'sgd', 'adam'}}). `--help` prints every
-- option with its default and exits. A usage error (an unknown option, which suggests
-- the closest known one, or a bad value) prints one line on stderr and exits with status
-- 2, as command-line tools do; with info.exit == false it is a Lua error instead.
local util = require('agop.util')

local cli = {}

local function key(name) return (name:gsub('-', '_')) end
local function flag(name) return '--' .. name:gsub('_', '-') end

local function convert(spec, raw)
  local default = spec[2]
  local t = type(default)
  if t == 'number' then
    local v = tonumber(raw)
    if not v then error(string.format('%s expects a number, got %q', flag(spec[1]), raw), 0) end
    if math.type(default) == 'integer' then
      if v ~= math.floor(v) then
        error(string.format('%s expects an integer, got %q', flag(spec[1]), raw), 0)
      end
      v = math.tointeger(v)
    end
    return v
  elseif t == 'boolean' then
    if raw == 'true' or raw == '1' or raw == 'yes' then return true end
    if raw == 'false' or raw == '0' or raw == 'no' then return false end
    error(string.format('%s expects true or false, got %q', flag(spec[1]), raw), 0)
  end
  local choices = spec[4]
  if choices then
    local set = {}
    for _, c in ipairs(choices) do set[c] = true end
    if not set[raw] then
      local near = util.closest(raw, set)
      error(string.format('%s expects one of %s, got %q%s', flag(spec[1]),
        table.concat(choices, ', '), raw, near and string.format('; did you mean %s?', near) or ''), 0)
    end
  end
  return raw
end

--- The help text for a spec list.
function cli.help(specs, info)
  info = info or {}
  local lines = {}
  if info.usage then lines[#lines + 1] = 'usage: ' .. info.usage end
  if info.about then lines[#lines + 1] = info.about end
  lines[#lines + 1] = ''
  lines[#lines + 1] = 'options:'
  for _, s in ipairs(specs) do
    local name = flag(s[1]) .. (type(s[2]) == 'boolean' and '' or ' ' .. type(s[2]):upper():sub(1, 3))
    local default = s[2] == '' and '(none)' or tostring(s[2])
    local choices = s[4] and ' (' .. table.concat(s[4], ' | ') .. ')' or ''
    lines[#lines + 1] = string.format('  %-24s %s%s (default: %s)', name, s[3] or '', choices,
      default)
  end
  lines[#lines + 1] = string.format('  %-24s %s', '--help', 'this text')
  return table.concat(lines, '\n')
end

--- Parses the script arguments (the global `arg`, or a list) against specs; returns a
--- table of values with defaults filled in, plus `given`, the set of names set explicitly.
--- A usage error exits (status 2) with one line on stderr, unless info.exit == false.
function cli.parse(args, specs, info)
  local ok, out, given = pcall(cli.parse_args, args, specs, info)
  if ok then return out, given end
  if info and info.exit == false then error(out, 2) end
  local script = type(arg) == 'table' and arg[0] or 'agoplua'
  io.stderr:write(string.format('%s: %s\n', script, tostring(out)))
  os.exit(2)
end

--- cli.parse without the exit: usage errors are Lua errors.
function cli.parse_args(args, specs, info)
  local byname, out, given = {}, {}, {}
  for _, s in ipairs(specs) do
    byname[key(s[1])] = s
    out[key(s[1])] = s[2]
  end
  local i = 1
  while args and args[i] do
    local a = args[i]
    if a == '--help' or a == '-h' then
      print(cli.help(specs, info))
      os.exit(0)
    end
    local name, value = a:match('^%-%-([%w_%-]+)=(.*)$')
    if not name then name = a:match('^%-%-([%w_%-]+)$') end
    if not name then
      error(string.format('unexpected argument %q (options look like --name value; see --help)', a), 0)
    end
    local k = key(name)
    local spec = byname[k]
    local negated = false
    if not spec and k:match('^no_') and byname[k:sub(4)] and type(byname[k:sub(4)][2]) == 'boolean' then
      spec, k, negated = byname[k:sub(4)], k:sub(4), true
    end
    if not spec then
      local near = util.closest(k, byname)
      error(string.format('unknown option --%s%s (see --help)', name,
        near and string.format("; did you mean %s?", flag(near)) or ''), 0)
    end
    if type(spec[2]) == 'boolean' and value == nil then
      out[k] = not negated
    else
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then error(string.format('%s expects a value', flag(spec[1])), 0) end
      end
      out[k] = convert(spec, value)
    end
    given[k] = true
    i = i + 1
  end
  return out, given
end

return cli
