-- w5_pixflow.lua: benchmark W5, frame safety: one situation of issue 14, and the longest poll(0), submit and close in it.
-- usage (from the checkout, after make all):
--   lua5.4 bench/w5_pixflow.lua ROW [--smoke] [--pace 60|fast] [--tmp DIR]   one row, one run
--   lua5.4 bench/w5_pixflow.lua all [--smoke] [--runs N]                    every row, the table
--   lua5.4 bench/w5_pixflow.lua list                                        the rows
-- One row prints what it saw on stderr and one JSON line last on stdout (times in seconds). The
-- loop is a game's: client:poll(0) once a frame at 60 fps (--pace fast: as fast as it can), the
-- game's own calls (start_download) after the poll. Every server is this process's own, on
-- 127.0.0.1 (the sandbox, bench/w5_servers.py), and stops with it; files go under a temporary
-- directory on the disk (fsync is part of what is measured: never a tmpfs), removed at the end.
-- docs/benchmarks-method.md (W5) says what each row does and why.
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local suite = require "bench.w5_suite"
local bench = require "bench.util"

local args = { pace = "60" }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--smoke" then args.smoke = true
    elseif a == "--pace" then i = i + 1; args.pace = arg[i]
    elseif a == "--tmp" then i = i + 1; args.tmp = arg[i]
    elseif a == "--runs" then i = i + 1; args.runs = tonumber(arg[i])
    elseif not args.row and a:sub(1, 1) ~= "-" then args.row = a
    else args.bad = true end
    i = i + 1
  end
end
if args.bad or not args.row or (args.pace ~= "60" and args.pace ~= "fast") then
  io.stderr:write("usage: lua5.4 bench/w5_pixflow.lua ROW|all|list [--smoke] [--pace 60|fast] [--tmp DIR] [--runs N]\n")
  os.exit(2)
end
if args.row == "list" then
  for _, r in ipairs(suite.ROWS) do print(("%-13s %s"):format(r.name, r.situation)) end
  os.exit(0)
end
if args.row == "all" then
  -- every row in its own process (its own timeout), then the table; exit 0 when every row ran
  local res = suite.run{ smoke = args.smoke, runs = args.runs or 1, log = io.stderr }
  print(suite.table(res))
  for _, l in ipairs(suite.longest_lines(res)) do print(l) end
  os.exit(suite.all_ran(res) and 0 or 1)
end
local row = suite.by_name[args.row]
if not row then
  io.stderr:write("w5: no row '", args.row, "' (lua5.4 bench/w5_pixflow.lua list)\n")
  os.exit(2)
end

local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function say(fmt, ...) io.stderr:write(("w5 %s: " .. fmt):format(args.row, ...), "\n") end

-- A helper built from its C source when missing or older than it (build/ is the make's).
local function helper(src, out, flags)
  if not os.execute(("test -f %s -a %s -ot %s"):format(out, src, out)) then
    assert(os.execute("mkdir -p build"))
    assert(os.execute(("cc -O1 -Wall -Wextra -o %s %s %s"):format(out, src, flags)), "cannot build " .. out)
  end
  return out
end

-- The resolver row runs in a child with spec/support/hangdns.c preloaded (getaddrinfo of
-- *.hang.test sleeps 30 s): this process starts it and hands on its output.
if row.name == "dns" and os.getenv("W5_HANGDNS") ~= "1" then
  local so = helper("spec/support/hangdns.c", "build/bench-hangdns.so", "-shared -fPIC -ldl")
  local rest = {}
  for i = 1, #arg do rest[i] = sh(arg[i]) end
  local ok = os.execute(("W5_HANGDNS=1 HANGDNS_SECONDS=30 LD_PRELOAD=\"${LD_PRELOAD:+$LD_PRELOAD:}%s\" " ..
    "lua5.4 bench/w5_pixflow.lua %s"):format(so, table.concat(rest, " ")))
  os.exit(ok and 0 or 1)
end

local socket = require "socket"
local pixflow = require "pixflow"
local core = require "pixflow.core"
local now = core.now                   -- the engine's monotonic clock (CLOCK_MONOTONIC), in seconds
-- this thread's CPU time, voluntary and involuntary context switches, minor and major faults
local probe = require(helper("bench/w5_probe.c", "build/w5_probe.so",
                             "-shared -fPIC $(pkg-config --cflags lua5.4) -std=c11") and "w5_probe")
local FRAME = 1 / 60

-- ------------------------------------------------------------------ the meter
-- The Lua heap shrank in a call: the host's garbage collector finished a cycle inside it (its
-- atomic phase and sweep run in whatever call allocates then; 0.3-0.5 ms here with a 0.6 MB
-- heap, none of it pixflow's C). Said so in the call's note, so that it is not taken for the
-- engine's work.
local function gc_note(kb0)
  local kb1 = collectgarbage("count")
  if kb1 >= kb0 then return "" end
  return ("; Lua GC swept in it (heap %.0f -> %.0f KB)"):format(kb0, kb1)
end
-- Every call a game makes is timed alone; the longest of each kind is kept with where it was.
local meter = { pumps = 0, changes = {}, submits = 0,
                poll = { max = 0 }, submit = { max = 0 }, close = { max = 0 }, start_download = { max = 0 } }
local function keep(kind, dt, at, note)
  local k = meter[kind]
  if dt > k.max then k.max, k.at, k.note = dt, at, note end
end
-- what changed in a pump: "3 changes: succeeded/downloading x3"
local function summary(list)
  if #list == 0 then return "no task changed" end
  local count, order = {}, {}
  for _, s in ipairs(list) do
    if not count[s] then order[#order + 1] = s; count[s] = 0 end
    count[s] = count[s] + 1
  end
  local parts = {}
  for _, s in ipairs(order) do parts[#parts + 1] = count[s] > 1 and (s .. " x" .. count[s]) or s end
  return ("%d change%s: %s"):format(#list, #list > 1 and "s" or "", table.concat(parts, ", "))
end
-- the three longest pumps, longest first: { dt, pump number, start (CLOCK_MONOTONIC seconds) }
meter.top, meter.most_changes, meter.done_max = {}, 0, 0
local function poll(c)
  meter.changes = {}
  meter.pumps = meter.pumps + 1
  local kb0 = collectgarbage("count")
  local cpu0, vol0, inv0, min0, maj0 = probe()
  local t0 = now()
  c:poll(0)
  local dt = now() - t0
  local cpu1, vol1, inv1, min1, maj1 = probe()
  if dt > meter.poll.max then
    -- where the longest pump's time went: work (CPU), waiting (voluntary switches), preemption
    keep("poll", dt, meter.pumps, ("%s; CPU %.3f ms, %d waits, %d preemptions, %d+%d page faults%s"):format(
      summary(meter.changes), (cpu1 - cpu0) * 1e3, vol1 - vol0, inv1 - inv0, min1 - min0, maj1 - maj0,
      gc_note(kb0)))
  end
  if #meter.changes > meter.most_changes then meter.most_changes = #meter.changes end
  if dt > meter.done_max then
    -- the longest pump in which a task ended or a download was finished (phase "done")
    for _, ch in ipairs(meter.changes) do
      if ch:find("/done$") then meter.done_max, meter.done_at = dt, meter.pumps break end
    end
  end
  local top = meter.top
  if #top < 3 or dt > top[#top][1] then
    top[#top + 1] = { dt, meter.pumps, t0 }
    table.sort(top, function(a, b) return a[1] > b[1] end)
    top[4] = nil
  end
end
local function submit(c, req, opts)
  meter.submits = meter.submits + 1
  local kb0 = collectgarbage("count")
  local cpu0, vol0, inv0, min0, maj0 = probe()
  local t0 = now()
  local task, err = c:submit(req, opts)
  local dt = now() - t0
  local cpu1, vol1, inv1, min1, maj1 = probe()
  if dt > meter.submit.max then
    keep("submit", dt, meter.submits, ("CPU %.3f ms, %d waits, %d preemptions, %d+%d page faults%s"):format(
      (cpu1 - cpu0) * 1e3, vol1 - vol0, inv1 - inv0, min1 - min0, maj1 - maj0, gc_note(kb0)))
  end
  return assert(task, err and tostring(err))
end
local function start_download(task, path)
  local t0 = now()
  local ok, err = task:start_download(path)
  keep("start_download", now() - t0, meter.pumps)
  return ok, err
end

-- Pump c once a frame until step() says the row is done (true) or `seconds` pass (false).
local function frames(c, seconds, step)
  local deadline = now() + seconds
  local next_frame = now()
  while true do
    poll(c)
    if step() then return true end
    if now() >= deadline then return false end
    if args.pace == "60" then
      next_frame = next_frame + FRAME
      local wait = next_frame - now()
      if wait > 0 then socket.sleep(wait) else next_frame = now() end
    end
  end
end

-- ------------------------------------------------------------------ what a row may start
local cleanups = {}                    -- run in reverse order at the end, whatever happened
local function on_exit(fn) cleanups[#cleanups + 1] = fn end

local tmp = args.tmp
if not tmp then
  local p = io.popen("mktemp -d \"${TMPDIR:-/tmp}/pixflow-w5.XXXXXX\"")
  tmp = p:read("l")
  p:close()
  assert(tmp and tmp ~= "", "mktemp failed")
  on_exit(function() os.execute("rm -rf " .. sh(tmp)) end)
else
  on_exit(function() os.execute("rm -rf " .. sh(tmp) .. "/*") end)
end
-- "ext4" (a tmpfs would make every fsync free, and the figures meaningless)
local function fs_type(dir)
  local p = io.popen("df --output=fstype " .. sh(dir) .. " 2>/dev/null | tail -1")
  local t = p:read("l")
  p:close()
  return t or "?"
end

local function client(opts)
  opts.provider = opts.provider or "apimart"
  opts.api_key = opts.api_key or "bench-key"
  local c = assert(pixflow.new(opts))
  c:on_change(function(t) meter.changes[#meter.changes + 1] = t.status .. "/" .. tostring(t.phase) end)
  local closed = false
  on_exit(function() if not closed then c:close() end end)
  return c, function()
    local t0 = now()
    c:close()
    keep("close", now() - t0, meter.pumps)
    closed = true
  end
end

-- The emulated gateways stand in for servers on other machines, but share this one's two cores
-- with the game: they run under SCHED_IDLE (chrt --idle), so that a server's burst of work never
-- takes the core from the frame (at nice 10 one still did, 3.4 ms in the bigurl row). What the
-- frame still loses to preemption, the longest pump's line says.
local SERVER = "chrt --idle 0 "
local function sandbox()
  local s = require("spec.support.sandbox").start{ task_seconds = 1, seed = 5, idle = true }
  on_exit(function() s.stop() end)
  return s
end

local PY = io.open("/usr/bin/python3") and "/usr/bin/python3" or "python3"
local function python_server(mode, extra)
  local p = assert(io.popen(("exec %s%s bench/w5_servers.py %s %s 2>/dev/null"):format(SERVER, PY, mode,
    extra or "")))
  local line = p:read("l") or ""
  local url, pid = line:match("listening on (http://127%.0%.0%.1:%d+) pid (%d+)")
  if not url then p:close(); error("bench/w5_servers.py did not start: " .. line) end
  on_exit(function() os.execute("kill " .. pid .. " 2>/dev/null"); p:close() end)
  return { url = url, stats = function()
    local code, body = require("spec.support.sandbox").request("GET", url .. "/_stats")
    assert(code == 200, "w5_servers stats: " .. tostring(code))
    return require("cjson").decode(body)
  end }
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end
local function err_code(t) return t.error and (t.error.code or t.error.kind) or "-" end
local MiB = 1 << 20
local S = args.smoke
local REQ = { model = "v6", prompt = "a knight at the gate", duration = 5, resolution = "540p" }

-- ------------------------------------------------------------------ the rows
-- Each returns ok (the situation really happened), what happened, and (optionally) the
-- situation's text where it depends on what was found (a cache that could not be dropped).
local ROWS = {}

-- 1. A base_url host that never resolves: a task whose connect times out while getaddrinfo
-- still hangs, then close() while a second task's name is still being resolved.
function ROWS.dns()
  local connect = S and 0.5 or 2
  local c, close = client{ base_url = "http://gw.hang.test:9/apimart", timeouts = { connect = connect },
                           retry = { submit_attempts = 1 } }
  local t0 = now()
  local a = submit(c, REQ)
  frames(c, connect + 10, function() return a.done end)
  local took = now() - t0
  local b = submit(c, REQ)
  for _ = 1, 10 do poll(c) socket.sleep(FRAME) end
  local resolving = not b.done
  close()
  return a.done and err_code(a) == "connect_timeout" and resolving,
    ("first task %s (%s) after %.1f s (connect timeout %g s); close() with a second still resolving"):format(
      a.status, err_code(a), took, connect)
end

-- 2. The end of a large download: the sandbox's apimart makes a result of `size` bytes.
local function download(size)
  return function()
    local sbx = sandbox()
    local c, close = client{ base_url = sbx.base("apimart"), poll = { initial = 0, interval = 0.05, jitter = 0 } }
    local t = submit(c, { model = "v6", prompt = ("a long take #polls=1 #size=%d"):format(size), duration = 5,
                          resolution = "540p" })
    local path, started, t0 = tmp .. "/video.mp4", false, nil
    frames(c, 180, function()
      if t.status == "succeeded" and not started then
        started, t0 = true, now()
        assert(start_download(t, path))
      end
      if t.done and t.status ~= "succeeded" then return true end
      local s = t:download_state()
      return s == "done" or s == "failed"
    end)
    local took = t0 and now() - t0 or 0
    local state = t:download_state()
    close()
    local got = file_size(path)
    return got == size, ("download %s, %s bytes in %.2f s, to %s"):format(state, tostring(got), took, fs_type(tmp))
  end
end
ROWS.download400 = download((S and 8 or 400) * MiB)
ROWS.download50 = download((S and 2 or 50) * MiB)

-- 3. Many tasks whose status polls fall due together (poll.initial 1 s, no jitter) and end at
-- that poll (#polls=1), each then downloading a 64 KiB result.
local function complete(n, journal)
  return function()
    local sbx = sandbox()
    local c, close = client{ base_url = sbx.base("apimart"), journal = journal and (tmp .. "/journal.db") or nil,
                             max_per_host = 256,
                             poll = { initial = 1, interval = 1, jitter = 0, adaptive = false } }
    local tasks, queued, started = {}, {}, {}
    c:on_change(function(t) if t.status == "succeeded" and not started[t] then queued[#queued + 1] = t end end)
    for i = 1, n do
      tasks[i] = submit(c, { model = "v6", prompt = ("shot %d #polls=1 #size=65536"):format(i), duration = 5,
                             resolution = "540p" })
    end
    local index = {}
    for i, t in ipairs(tasks) do index[t] = i end
    local files = 0
    frames(c, 120, function()
      for _, t in ipairs(queued) do
        if not started[t] then
          started[t] = true
          assert(start_download(t, ("%s/shot-%d.mp4"):format(tmp, index[t])))
        end
      end
      queued = {}
      files = 0
      local ended = 0
      for _, t in ipairs(tasks) do
        if t.path then files = files + 1 end
        local s = t.status == "succeeded" and t:download_state()
        if t.path or s == "failed" or (t.done and t.status ~= "succeeded") then ended = ended + 1 end
      end
      return ended == n
    end)
    close()
    local st = sbx.stats().apimart
    return files == n, ("%d of %d downloaded, at most %d task changes in one pump, the longest pump where one " ..
      "ended %.3f ms (pump %d); %d submits, %d status reads, %d downloads at the sandbox%s"):format(files, n,
      meter.most_changes, meter.done_max * 1e3, meter.done_at or 0, st.submits, st.polls, st.downloads,
      journal and "; the journal on " .. fs_type(tmp) or "")
  end
end
ROWS.complete200 = complete(S and 20 or 200, false)
ROWS.complete200j = complete(S and 20 or 200, true)

-- 4-6. A hostile gateway (bench/w5_servers.py): until the task ends or `seconds` pass.
local function hostile(mode, extra, seconds, what)
  return function()
    local srv = python_server(mode, extra)
    local c, close = client{ base_url = srv.url, poll = { initial = 0, interval = 0.1, jitter = 0 },
                             retry = { base = 0.1, max = 0.2 } }
    local t = submit(c, REQ)
    frames(c, seconds, function() return t.done or t.halted end)
    local st = srv.stats()
    close()
    return st.polls >= 1, what(st, t)
  end
end
ROWS.gzipbomb = hostile("gzipbomb", "--bomb-bytes " .. (S and 8 or 64) * MiB, S and 2 or 6, function(st, t)
  return ("%d status replies of %d KiB gzip inflating to %d MiB each; task %s%s (%s), last retry %s"):format(
    st.polls, st.bomb_compressed // 1024, st.bomb_bytes // MiB, t.status, t.halted and ", halted" or "", err_code(t),
    t.last_retry and t.last_retry.code or "-")
end)
ROWS.bigurl = hostile("bigurl", "--url-bytes " .. (S and 1000000 or 4000000), S and 2 or 6, function(st, t)
  return ("%d status replies with a %d-byte video URL; task %s%s (%s), last retry %s"):format(
    st.polls, st.url_bytes, t.status, t.halted and ", halted" or "", err_code(t), t.last_retry and t.last_retry.code or "-")
end)

-- 5. A result whose body never ends: downloaded until `cap` bytes are on disk or `seconds`
-- pass, then close() in the middle of it.
function ROWS.endless()
  local srv = python_server("endless")
  local cap, seconds = (S and 16 or 1024) * MiB, S and 2 or 10
  local c, close = client{ base_url = srv.url, poll = { initial = 0, interval = 0.1, jitter = 0 },
                           download_attempts = 1 }
  local t = submit(c, REQ)
  local path, t0 = tmp .. "/endless.mp4", nil
  frames(c, seconds + 10, function()
    if t.status == "succeeded" and not t0 then
      t0 = now()
      assert(start_download(t, path))
    end
    if t.done and t.status ~= "succeeded" then return true end
    if not t0 then return false end
    if t:download_state() ~= "running" then return true end
    return (file_size(path .. ".part") or 0) >= cap or now() - t0 >= seconds
  end)
  local state, took = t:download_state(), t0 and now() - t0 or 0
  local got = file_size(path .. ".part") or file_size(path) or 0
  close()
  local st = srv.stats()
  return st.downloads >= 1 and got > MiB,
    ("%d MiB on disk (%s) after %.1f s, download %s when closed (the bench stops at %d MiB or %d s)"):format(
      got // MiB, fs_type(tmp), took, state, cap // MiB, seconds)
end

-- 7. submit with a local reference image of 20 MiB (the largest a gateway takes), dropped from
-- the page cache first, then uploaded and generated at the sandbox's apimart.
function ROWS.image20()
  local size = (S and 2 or 20) * MiB
  local img = tmp .. "/hero.png"
  local f = assert(io.open(img, "wb"))
  f:write("\137PNG\r\n\26\n", ("\0"):rep(24))
  f:close()
  assert(os.execute(("head -c %d /dev/urandom >> %s"):format(size - 32, sh(img))))
  local drop = helper("bench/w5_dropcache.c", "build/bench-w5-dropcache",
                      "-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE")
  local p = io.popen(drop .. " " .. sh(img) .. " 2>&1")
  local said = p:read("a")
  p:close()
  local resident, pages = said:match("resident (%d+) of (%d+) pages")
  resident, pages = tonumber(resident), tonumber(pages)
  local cache = resident == 0 and "cold cache" or
    (resident and ("warm cache: %d of %d pages still cached"):format(resident, pages) or "warm cache: " .. said)
  local sbx = sandbox()
  local c, close = client{ base_url = sbx.base("apimart"), poll = { initial = 0, interval = 0.05, jitter = 0 } }
  local t = submit(c, { model = "v6", prompt = "@hero walks #polls=1", duration = 5, resolution = "540p",
                        references = { { name = "hero", image = img } } })
  frames(c, 60, function() return t.done end)
  close()
  local st = sbx.stats().apimart
  return t.status == "succeeded" and st.uploads == 1,
    ("task %s (%s), %d upload at the sandbox; %s, on %s"):format(t.status, err_code(t), st.uploads, cache,
      fs_type(tmp)),
    ("submit with a %d MB local reference image (%s)"):format(size // MiB, cache)
end

-- ------------------------------------------------------------------ run it
-- CPU time the hypervisor gave to other guests while this VM's vCPUs wanted it (steal, in
-- /proc/stat's USER_HZ ticks, every CPU together; 0 on bare metal): a vCPU taken away for a few
-- milliseconds stretches whatever call was running, and the figure says when that happened
local function steal_ticks()
  local f = io.open("/proc/stat")
  local line = f and f:read("l")
  if f then f:close() end
  local v = line and select(8, line:match("^cpu%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)"))
  return tonumber(v) or 0
end
local steal0 = steal_ticks()
local t_start = now()
local ok, good, what, situation = xpcall(ROWS[row.name], debug.traceback)
for i = #cleanups, 1, -1 do pcall(cleanups[i]) end
if not ok then
  io.stderr:write("w5 ", row.name, ": the row failed: ", tostring(good), "\n")
  os.exit(1)
end
local out = {
  row = row.name, situation = situation or suite.situation(row, S), pace = args.pace, ran = good and 1 or 0,
  outcome = what, pumps = meter.pumps, submits = meter.submits, seconds = now() - t_start,
  poll_max = meter.poll.max, poll_at = meter.poll.at or 0, poll_note = meter.poll.note or "",
  submit_max = meter.submit.max, submit_at = meter.submit.at or 0, submit_note = meter.submit.note or "",
  close_max = meter.close.max, start_download_max = meter.start_download.max,
  steal_ms = (steal_ticks() - steal0) * 10,
}
local top = {}
for i, p in ipairs(meter.top) do top[i] = ("%.3f ms (pump %d)"):format(p[1] * 1e3, p[2]) end
out.poll_top = table.concat(top, ", ")
say("%s", what)
say("longest poll(0) %.3f ms (pump %d of %d: %s), submit %.3f ms (%d of %d: %s), close %.3f ms, start_download %.3f ms",
  out.poll_max * 1e3, out.poll_at, out.pumps, out.poll_note, out.submit_max * 1e3, out.submit_at, out.submits, out.submit_note,
  out.close_max * 1e3, out.start_download_max * 1e3)
say("the three longest pumps: %s", out.poll_top)
-- for a profile of the longest pumps alone (perf record -k CLOCK_MONOTONIC, then perf script
-- --time START,END): where each began and ended on that clock
if os.getenv("W5_WINDOWS") then
  for _, p in ipairs(meter.top) do say("window pump %d: %.6f,%.6f", p[2], p[3], p[3] + p[1]) end
end
if not good then say("the situation was NOT re-created: its figures mean nothing") end
print(bench.json(out))
os.exit(good and 0 or 1)
