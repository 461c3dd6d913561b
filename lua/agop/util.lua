-- agop.util: small helpers shared by the Lua library (options checking, formatting).
local util = {}

-- Levenshtein distance, for "did you mean" suggestions.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = {[0] = i}
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

--- The known key closest to `key`, or nil when none is close.
function util.closest(key, known)
  local best, bestd
  for k in pairs(known) do
    if type(k) == 'string' then
      local d = distance(key, k)
      if not bestd or d < bestd or (d == bestd and k < best) then best, bestd = k, d end
    end
  end
  if best and bestd <= math.max(2, #key // 3) then return best end
  return nil
end

--- util.options(opts, defaults, where) -> a new table: opts checked against `defaults`,
--- with the defaults filled in. The one options parser of the library:
---   * opts may be nil (all defaults); anything else but a table is an error;
---   * an unknown key is an error naming `where`, with the closest known key:
---     "train: unknown option 'lr_rate' (did you mean 'lr'?)";
---   * a default of util.REQUIRED makes the key mandatory ("option 'lr' is required");
---   * a default of util.NONE marks a known key without default (nil when not given);
---   * a default of `false` is kept as false (a key that is off, or absent, by default).
--- Errors follow agop.check's policy: "where: message", raised at level 0 (no file:line).
util.REQUIRED = setmetatable({}, {__tostring = function() return '<required>' end})
util.NONE = setmetatable({}, {__tostring = function() return '<none>' end})

function util.options(opts, defaults, where)
  where = where or 'options'
  if opts ~= nil and type(opts) ~= 'table' then
    error(string.format('%s: options must be a table, got %s', where, type(opts)), 0)
  end
  local out = {}
  for k, v in pairs(opts or {}) do
    if defaults[k] == nil then
      local near = type(k) == 'string' and util.closest(k, defaults)
      error(string.format("%s: unknown option '%s'%s", where, tostring(k),
        near and string.format(" (did you mean '%s'?)", near) or ''), 0)
    end
    out[k] = v
  end
  for k, v in pairs(defaults) do
    if out[k] == nil then
      if v == util.REQUIRED then
        error(string.format("%s: option '%s' is required", where, k), 0)
      end
      if v ~= util.NONE then out[k] = v end
    end
  end
  return out
end

--- Shallow copy of a table.
function util.copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

--- Sorted keys of a table.
function util.keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

--- "1.5 MiB"
function util.bytes(n)
  local units = {'B', 'KiB', 'MiB', 'GiB', 'TiB'}
  local i = 1
  while n >= 1024 and i < #units do n, i = n / 1024, i + 1 end
  return string.format(i == 1 and '%d %s' or '%.1f %s', n, units[i])
end

--- "1h02m", "3m05s", "12.3s"
function util.duration(s)
  if s ~= s or s == math.huge then return '?' end
  if s < 60 then return string.format('%.1fs', s) end
  if s < 3600 then return string.format('%dm%02ds', s // 60, math.floor(s % 60)) end
  return string.format('%dh%02dm', s // 3600, math.floor(s % 3600 / 60))
end

--- Creates the folder (and parents); errors with the path when it cannot.
function util.mkdir(path)
  local ok = os.execute(string.format("mkdir -p '%s'", path:gsub("'", "'\\''")))
  if not ok then error(string.format("cannot create folder '%s'", path), 0) end
end

--- True when a file can be opened for reading.
function util.exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end

--- Reads a whole file, or errors naming it.
function util.read_file(path)
  local f, err = io.open(path, 'rb')
  if not f then error(string.format('cannot read %s', err), 0) end
  local s = f:read('a')
  f:close()
  return s
end

--- Writes a whole file atomically (temporary file, fsync, rename: agop.write_atomic).
function util.write_file(path, text)
  local ok, err = pcall(require('agop').write_atomic, path, {text})
  if not ok then error(tostring(err), 0) end
end

--- The words of a comma- (or space-) separated list: 'a, b,c' -> {'a', 'b', 'c'}.
function util.split(s)
  local out = {}
  for w in s:gmatch('[^,%s]+') do out[#out + 1] = w end
  return out
end

--- The rows of a simple CSV file (no quoted cells) as tables keyed by the header's
--- names; cells are strings, or numbers with opts.numbers (an empty cell is then nil).
function util.read_csv(path, opts)
  local rows, header = {}, nil
  for line in io.lines(path) do
    local cells = {}
    for c in (line .. ','):gmatch('([^,]*),') do cells[#cells + 1] = c end
    if not header then header = cells
    else
      local r = {}
      for i, k in ipairs(header) do
        if opts and opts.numbers then r[k] = tonumber(cells[i]) else r[k] = cells[i] end
      end
      rows[#rows + 1] = r
    end
  end
  return rows
end

return util
