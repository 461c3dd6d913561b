-- agop.repl: the logic of agoplua's interactive prompt, kept apart from the terminal so
-- that it can be tested without one. bindings/main.c reads lines with readline and asks
-- this module what a line means (compile), whether it needs more lines (incomplete), how
-- to show results (format) and what Tab can complete (complete).
local repl = {}

local KEYWORDS = {
  'and', 'break', 'do', 'else', 'elseif', 'end', 'false', 'for', 'function', 'goto', 'if',
  'in', 'local', 'nil', 'not', 'or', 'repeat', 'return', 'then', 'true', 'until', 'while',
}
local IS_KEYWORD = {}
for _, k in ipairs(KEYWORDS) do IS_KEYWORD[k] = true end

local EOF_MARK = '<eof>'

--- True when chunk is a statement cut short (more lines would complete it), false when it
--- compiles or has an error that more lines cannot fix. Same rule as lua.c: the syntax
--- error ends with "<eof>".
function repl.incomplete(chunk)
  local f, err = load(chunk, '=stdin')
  if f then return false end
  return err:sub(-#EOF_MARK) == EOF_MARK
end

--- Compiles what the user typed. An expression is compiled as `return <chunk>` so that
--- its value is printed, anything else as a statement. Returns the function, or nil, the
--- syntax error and whether the chunk is merely incomplete.
function repl.compile(chunk, env)
  env = env or _G
  local f = load('return ' .. chunk, '=stdin', 't', env)
  if f then return f end
  local err
  f, err = load(chunk, '=stdin', 't', env)
  if f then return f end
  return nil, err, err:sub(-#EOF_MARK) == EOF_MARK
end

--- The results of a REPL line as one string, tab-separated, each through tostring;
--- nil when there is nothing to show.
function repl.format(...)
  local n = select('#', ...)
  if n == 0 then return nil end
  local out = {}
  for i = 1, n do out[i] = tostring((select(i, ...))) end
  return table.concat(out, '\t')
end

-- True when the end of line is inside a string literal or a comment, where Tab should
-- not complete Lua names.
local function in_string_or_comment(line)
  local i, n = 1, #line
  while i <= n do
    local c = line:sub(i, i)
    if c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = line:sub(j, j)
        if d == '\\' then j = j + 1 elseif d == c then break end
        j = j + 1
      end
      if j > n then return true end
      i = j + 1
    elseif line:sub(i, i + 1) == '--' then
      return true
    elseif c == '[' and line:find('^%[=*%[', i) then
      local eqs = line:match('^%[(=*)%[', i)
      local close = line:find(']' .. eqs .. ']', i, true)
      if not close then return true end
      i = close + #eqs + 2
    else
      i = i + 1
    end
  end
  return false
end

-- v[k] without raising (a metatable's __index may be a function that errors)
local function get(v, k)
  local tv = type(v)
  if tv ~= 'table' and tv ~= 'userdata' and tv ~= 'string' then return nil end
  local ok, x = pcall(function() return v[k] end)
  if ok then return x end
  return nil
end

local function callable(x)
  if type(x) == 'function' then return true end
  local mt = debug.getmetatable(x)
  return type(mt) == 'table' and rawget(mt, '__call') ~= nil
end

-- Every string key reachable from v: its own keys (tables), then those of its
-- metatable's __index table, that table's own __index table, and so on (methods of a
-- class and of its parents). An __index function cannot be listed; when the metatable
-- keeps its methods in a __methods table (agop.Tensor: __index is a function so that
-- t[i] works), the chain goes on there. A metatable's __complete function may name keys
-- that only exist once used (agop's lazy submodules): __complete(v) -> list of names.
local function keys_of(v)
  local found, seen = {}, {}
  local depth = 0
  while v ~= nil and depth < 32 do
    if type(v) == 'table' then
      if seen[v] then break end
      seen[v] = true
      for k, x in next, v do
        if type(k) == 'string' and found[k] == nil then found[k] = x end
      end
    end
    local mt = debug.getmetatable(v)
    if type(mt) ~= 'table' then break end
    local extra = rawget(mt, '__complete')
    if type(extra) == 'function' then
      local ok, names = pcall(extra, v)
      if ok and type(names) == 'table' then
        for _, k in ipairs(names) do
          if type(k) == 'string' and found[k] == nil then found[k] = true end
        end
      end
    end
    local idx = rawget(mt, '__index')
    if type(idx) ~= 'table' then idx = rawget(mt, '__methods') end
    if type(idx) ~= 'table' then break end
    v = idx
    depth = depth + 1
  end
  return found
end

--- Completions for the end of line: a list of full lines, sorted. The completed word is a
--- global (`agop` from `ag`), a field (`agop.zeros` from `agop.ze`, following __index
--- tables of metatables, chained) or a method (`t:add_` from `t:ad`, functions only).
--- Names are looked up in env (default _G); nothing is called except __index functions
--- on the way to the table being completed.
function repl.complete(line, env)
  env = env or _G
  if in_string_or_comment(line) then return {} end
  local head, path = line:match('^(.-)([%w_%.:]*)$')
  local cut = path:match('^.*()%.%.') -- `s..ag`: the path starts after the last `..`
  if cut then head, path = head .. path:sub(1, cut + 1), path:sub(cut + 2) end
  -- path is `name(.name)*([.:]partial)?` or a bare partial name
  if path:find('^[%d.:]') then return {} end -- a number, or `f().x`, `t[1]:m`: not evaluated
  if path == '' and head:find('[%]%)}\'"]$') then return {} end -- right after `f()`
  local parts, seps = {}, {}
  local rest = path
  local first = rest:match('^[%a_][%w_]*') or ''
  parts[1] = first
  rest = rest:sub(#first + 1)
  while rest ~= '' do
    local sep, name = rest:match('^([%.:])([%a_]?[%w_]*)')
    if not sep then return {} end
    if seps[#seps] == ':' then return {} end -- `a:b.c` is not an expression
    seps[#seps + 1] = sep
    parts[#parts + 1] = name
    rest = rest:sub(#sep + #name + 1)
  end
  local partial = parts[#parts]
  local prefix = path:sub(1, #path - #partial)
  local out = {}
  if #parts == 1 then
    for k in pairs(keys_of(env)) do
      if k:find('^[%a_][%w_]*$') and k:sub(1, #partial) == partial then out[#out + 1] = k end
    end
    for _, k in ipairs(KEYWORDS) do
      if k:sub(1, #partial) == partial and get(env, k) == nil then out[#out + 1] = k end
    end
  else
    local v = get(env, parts[1])
    for i = 2, #parts - 1 do v = get(v, parts[i]) end
    if v == nil then return {} end
    local methods_only = seps[#seps] == ':'
    for k, x in pairs(keys_of(v)) do
      if k:find('^[%a_][%w_]*$') and not IS_KEYWORD[k] and k:sub(1, #partial) == partial
          and (partial:sub(1, 1) == '_' or not k:find('^__'))
          and (not methods_only or callable(x)) then
        out[#out + 1] = k
      end
    end
  end
  table.sort(out)
  for i, k in ipairs(out) do out[i] = head .. prefix .. k end
  return out
end

return repl
