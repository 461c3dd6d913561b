-- The agoplua executable as a user runs it (bindings/main.c), through a shell: options,
-- script arguments, stdin, exit codes, error messages, AGOP_THREADS, the OpenBLAS core
-- switch, the REPL fed from a pipe, and Ctrl-C in script mode.
local lu = require('luaunit')

-- the interpreter running this file: the most negative index of arg
local EXE = require('helpers').exe()

local function q(s) return "'" .. tostring(s):gsub("'", [['\'']]) .. "'" end

local tmpdir = os.tmpname()
os.remove(tmpdir)
assert(os.execute('mkdir -p ' .. q(tmpdir)))

local function write(name, text)
  local path = tmpdir .. '/' .. name
  local f = assert(io.open(path, 'w'))
  f:write(text)
  f:close()
  return path
end

local function read(path)
  local f = io.open(path, 'r')
  if not f then return nil end
  local s = f:read('a')
  f:close()
  return s
end

-- Every variable the host's behaviour depends on, unset in each child so that the
-- environment this suite inherits (a machine that sets OPENBLAS_CORETYPE, a user's
-- AGOP_THREADS or LUA_INIT) cannot change what a test sees; a test sets what it needs.
local HOST_VARS = {'OPENBLAS_CORETYPE', 'AGOP_REEXEC', 'AGOP_PRETEND_CORE', 'AGOP_THREADS',
                   'OMP_WAIT_POLICY', 'OPENBLAS_THREAD_TIMEOUT', 'LUA_INIT', 'LUA_INIT_5_4'}
local CLEAN_ENV = 'env -u ' .. table.concat(HOST_VARS, ' -u ')

-- Runs `env agoplua args` in a clean environment plus opts.env, with stdin from a string
-- (or /dev/null); returns exit code, stdout, stderr.
local function run(args, opts)
  opts = opts or {}
  local input = opts.stdin and write('stdin.txt', opts.stdin) or '/dev/null'
  local out, err = tmpdir .. '/out.txt', tmpdir .. '/err.txt'
  local cmd = string.format('%s%s %s %s %s <%s >%s 2>%s',
    opts.cd and ('cd ' .. q(opts.cd) .. ' && ') or '', CLEAN_ENV, opts.env or '', q(EXE), args,
    q(input), q(out), q(err))
  local ok, how, code = os.execute(cmd)
  assert(how == 'exit', 'agoplua ended by signal ' .. tostring(code))
  return code, read(out), read(err)
end

TestHost = {}

function TestHost:test_version_names_every_component()
  local code, out = run('-v')
  lu.assertEquals(code, 0)
  for _, want in ipairs({'agoplua 0.1.0', 'Lua 5.4', 'OpenBLAS', 'BLAS core: ', 'libpng ',
                         'threads: '}) do
    lu.assertStrContains(out, want)
  end
end

function TestHost:test_e_runs_in_order_with_agop_loaded()
  local code, out = run([[-e 'x = 2' -e 'print(x * 3, type(agop.zeros), package.loaded.agop == agop)']])
  lu.assertEquals(code, 0)
  lu.assertEquals(out, '6\tfunction\ttrue\n')
  lu.assertEquals(select(2, run([[-e 'print(package.preload.agop ~= nil)']])), 'true\n')
end

function TestHost:test_l_requires_a_module_into_a_global()
  local code, out = run([[-l r=agop.repl -e 'print(type(r.complete))']])
  lu.assertEquals(code, 0)
  lu.assertEquals(out, 'function\n')
  code, out = run([[-l string -e 'print(string == require("string"))']])
  lu.assertEquals(out, 'true\n')
end

function TestHost:test_script_gets_its_arguments()
  local s = write('args.lua', [[
print(select('#', ...), ...)
print(arg[0] == SCRIPT, arg[1], arg[2], arg[3], arg[-1], arg[-2])
]])
  local code, out = run(string.format([[-e 'SCRIPT=%q' %s a 'b c' --key]], s, q(s)))
  lu.assertEquals(code, 0)
  lu.assertEquals(out, '3\ta\tb c\t--key\ntrue\ta\tb c\t--key\tSCRIPT=' .. string.format('%q', s) .. '\t-e\n')
end

function TestHost:test_double_dash_ends_options()
  local s = write('dd.lua', 'print(..., arg[-1])')
  local code, out = run('-- ' .. q(s) .. ' -x')
  lu.assertEquals(code, 0)
  lu.assertEquals(out, '-x\t--\n')
end

function TestHost:test_dash_runs_stdin_with_arguments()
  local code, out = run('- a b', {stdin = 'print("stdin", ...)'})
  lu.assertEquals(code, 0)
  lu.assertEquals(out, 'stdin\ta\tb\n')
  -- with no arguments and no terminal, stdin is the script too
  code, out = run('', {stdin = 'print(1 + 1)'})
  lu.assertEquals(code, 0)
  lu.assertEquals(out, '2\n')
end

function TestHost:test_errors_print_message_and_traceback_and_exit_1()
  local s = write('bad.lua', 'local function f() error("boom") end\nf()\n')
  local code, out, err = run(q(s))
  lu.assertEquals(code, 1)
  lu.assertEquals(out, '')
  lu.assertStrContains(err, 'bad.lua:1: boom')
  lu.assertStrContains(err, 'stack traceback:')
  lu.assertStrContains(err, "in local 'f'")
end

function TestHost:test_syntax_errors_and_missing_files_exit_1()
  local s = write('syntax.lua', 'x = = 1\n')
  local code, _, err = run(q(s))
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "syntax.lua:1: unexpected symbol near '='")
  code, _, err = run(q(tmpdir .. '/no_such_file.lua'))
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, 'cannot open')
  code, _, err = run([[-e 'error({})']])
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, 'error object is a table value')
end

function TestHost:test_exit_codes_pass_through()
  lu.assertEquals(run([[-e 'os.exit(3)']]), 3)
  lu.assertEquals(run([[-e 'os.exit(true)']]), 0)
  lu.assertEquals(run([[-e 'x = 1']]), 0)
end

function TestHost:test_bad_options_show_usage()
  for _, bad in ipairs({'-x', '-e', '-vv', '--x'}) do
    local code, out, err = run(bad)
    lu.assertEquals(code, 1, bad)
    lu.assertEquals(out, '', bad)
    lu.assertStrContains(err, 'usage: agoplua [options] [script [args]]')
  end
  lu.assertStrContains(select(3, run('-x')), "unrecognized option '-x'")
end

function TestHost:test_E_ignores_lua_init_and_W_turns_warnings_on()
  local _, out = run([[-e 'print(2)']], {env = [[LUA_INIT='print(1)']]})
  lu.assertEquals(out, '1\n2\n')
  _, out = run([[-E -e 'print(2)']], {env = [[LUA_INIT='print(1)']]})
  lu.assertEquals(out, '2\n')
  local _, _, err = run([[-W -e 'warn("careful")']])
  lu.assertStrContains(err, 'Lua warning: careful')
  _, _, err = run([[-e 'warn("careful")']])
  lu.assertEquals(err, '')
end

function TestHost:test_runs_from_any_folder()
  local code, out = run([[-e 'print(require("agop.repl") ~= nil, package.path:find("/usr/share/lua/5.4/?.lua", 1, true) ~= nil)']], {cd = '/'})
  lu.assertEquals(code, 0)
  lu.assertEquals(out, 'true\ttrue\n')
  code, out = run([[-e 'print(require("luaunit") ~= nil)']], {cd = '/', env = [[LUA_PATH='/nowhere/?.lua']]})
  lu.assertEquals(code, 0)
  lu.assertEquals(out, 'true\n')
end

function TestHost:test_agop_threads_is_checked()
  local code, out = run([[-e 'print(agop.get_threads())']], {env = 'AGOP_THREADS=1'})
  lu.assertEquals(code, 0)
  lu.assertEquals(out, '1\n')
  for _, bad in ipairs({'0', '-2', 'two', '1.5', '', ' 3'}) do
    local code2, _, err = run([[-e 'print(1)']], {env = 'AGOP_THREADS=' .. q(bad)})
    lu.assertEquals(code2, 1, bad)
    lu.assertStrContains(err, 'AGOP_THREADS must be a positive integer')
  end
end

local function cpu_has(flag)
  local info = read('/proc/cpuinfo') or ''
  local flags = info:match('\nflags%s*:([^\n]*)') or info:match('^flags%s*:([^\n]*)') or ''
  return (' ' .. flags .. ' '):find(' ' .. flag .. ' ', 1, true) ~= nil
end

local SHOW_CORE = [[-e 'print(os.getenv("OPENBLAS_CORETYPE"), os.getenv("AGOP_REEXEC"), agop.blas_info().core)']]

function TestHost:test_generic_blas_core_is_switched_by_a_reexec()
  -- AGOP_PRETEND_CORE makes the host believe OpenBLAS fell back to Prescott
  local code, out = run(SHOW_CORE, {env = 'AGOP_PRETEND_CORE=Prescott'})
  lu.assertEquals(code, 0)
  local want = cpu_has('avx512f') and cpu_has('avx512bw') and cpu_has('avx512vl') and
                   cpu_has('avx512dq') and (cpu_has('avx512_bf16') and 'Cooperlake' or 'SkylakeX')
               or (cpu_has('avx2') and cpu_has('fma')) and
                   ((read('/proc/cpuinfo') or ''):find('AuthenticAMD') and 'Zen' or 'Haswell')
  if not want then
    lu.assertEquals(out:match('^[^\t]*'), 'nil') -- nothing better to switch to
    return
  end
  -- the second run has the variable, the marker is gone, and OpenBLAS uses the new core
  lu.assertEquals(out:match('^[^\t]*'), want)
  lu.assertEquals(out:match('^[^\t]*\t([^\t]*)'), 'nil')
  local _, vout = run('-v', {env = 'AGOP_PRETEND_CORE=Prescott'})
  lu.assertStrContains(vout, 'switched by agoplua from Prescott')
end

function TestHost:test_users_coretype_is_never_overridden()
  local code, out = run(SHOW_CORE, {env = 'OPENBLAS_CORETYPE=Core2 AGOP_PRETEND_CORE=Prescott'})
  lu.assertEquals(code, 0)
  lu.assertEquals(out, 'Core2\tnil\tCore2\n')
  local _, vout = run('-v', {env = 'OPENBLAS_CORETYPE=Core2'})
  lu.assertStrContains(vout, 'BLAS core: Core2 (OPENBLAS_CORETYPE=Core2)')
end

local SHOW_WAIT = [[-e 'print(os.getenv("OMP_WAIT_POLICY"), os.getenv("OPENBLAS_THREAD_TIMEOUT"), os.getenv("AGOP_REEXEC"))']]

function TestHost:test_idle_threads_sleep_but_children_see_the_users_environment()
  -- OpenBLAS read the timeout at load (-v asks it), yet the script and the programs it
  -- starts see neither variable nor the re-exec mark
  local code, out = run(SHOW_WAIT)
  lu.assertEquals(code, 0)
  lu.assertEquals(out, 'nil\tnil\tnil\n')
  local _, vout = run('-v')
  lu.assertStrContains(vout, 'OpenMP wait policy: passive (set by agoplua)')
  lu.assertStrContains(vout, 'OpenBLAS thread timeout: 4 (set by agoplua)')
  -- with the policy set by the user, the timeout is still chosen (and the other way round)
  _, out = run(SHOW_WAIT, {env = 'OMP_WAIT_POLICY=active'})
  lu.assertEquals(out, 'active\tnil\tnil\n')
  _, vout = run('-v', {env = 'OMP_WAIT_POLICY=active'})
  lu.assertStrContains(vout, 'OpenBLAS thread timeout: 4 (set by agoplua)')
  _, out = run(SHOW_WAIT, {env = 'OPENBLAS_THREAD_TIMEOUT=12'})
  lu.assertEquals(out, 'nil\t12\tnil\n')
end

function TestHost:test_users_blas_thread_timeout_is_never_overridden()
  local code, out = run(SHOW_WAIT, {env = 'OPENBLAS_THREAD_TIMEOUT=12 OMP_WAIT_POLICY=active'})
  lu.assertEquals(code, 0)
  lu.assertEquals(out, 'active\t12\tnil\n') -- nothing to change: no re-exec either
  local _, vout = run('-v', {env = 'OPENBLAS_THREAD_TIMEOUT=12'})
  lu.assertStrContains(vout, 'OpenBLAS thread timeout: 12 (from OPENBLAS_THREAD_TIMEOUT)')
end

function TestHost:test_core_openblas_chose_well_is_kept()
  local _, out = run(SHOW_CORE, {env = 'AGOP_PRETEND_CORE=Zen'})
  lu.assertEquals(out:match('^[^\t]*'), 'nil')
end

function TestHost:test_repl_prints_values_and_continues_after_errors()
  local home = tmpdir .. '/home'
  os.execute('mkdir -p ' .. q(home))
  local code, out, err = run('-i', {env = 'HOME=' .. q(home), stdin = table.concat({
    '1 + 1', 'x = {', '10, 20}', 'return #x, x[2]', 'error("oops")', 'print("after")',
    'x = = 1', 'agop.zeros(2):numel()'}, '\n') .. '\n'})
  lu.assertEquals(code, 0)
  lu.assertStrContains(out, '> 1 + 1\n2\n')
  lu.assertStrContains(out, '>> 10, 20}\n')
  lu.assertStrContains(out, '2\t20\n')
  lu.assertStrContains(out, 'after\n')
  lu.assertStrContains(out, '2\n')
  lu.assertStrContains(err, 'stdin:1: oops\nstack traceback:')
  lu.assertStrContains(err, "unexpected symbol near '='")
  lu.assertNotStrContains(err, 'agoplua:') -- the REPL prints errors without the name
  local history = read(home .. '/.agoplua_history') or ''
  lu.assertStrContains(history, 'x = {\n10, 20}') -- multi-line chunks stay whole
  lu.assertStrContains(history, 'print("after")')
end

function TestHost:test_ctrl_c_raises_an_error_a_script_can_catch()
  local ready = tmpdir .. '/ready'
  os.remove(ready)
  local s = write('loop.lua', string.format([[
local ok, err = pcall(function()
  io.open(%q, 'w'):close()
  local t0 = os.clock()
  while os.clock() - t0 < 30 do end -- stopped by Ctrl-C long before
  error('not interrupted')
end)
print('caught', err)
]], ready))
  local out = tmpdir .. '/loop.out'
  -- wait for the script to start its loop, then SIGINT it, as Ctrl-C would
  local cmd = string.format('%s %s >%s 2>&1 & pid=$!; i=0; while [ ! -f %s ] && [ $i -lt 300 ]; ' ..
    'do sleep 0.1; i=$((i+1)); done; kill -INT $pid; wait $pid', q(EXE), q(s), q(out), q(ready))
  local ok, how, code = os.execute(cmd)
  lu.assertEquals(how, 'exit')
  lu.assertEquals(code, 0)
  lu.assertStrContains(read(out), 'caught\t')
  lu.assertStrContains(read(out), 'interrupted!')
end
