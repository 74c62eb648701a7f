-- bench/run.lua: the benchmark suite (make bench, make bench-smoke). Starts a sandbox, runs
-- every workload against pixflow and its alternatives, checks in /_sandbox/stats that each
-- contestant made exactly the same requests (or voids the row), prints the table (median of the
-- runs, with min and max) and writes docs/benchmarks.md, a data file and a gnuplot chart.
-- usage: lua5.4 bench/run.lua [--smoke] [--runs N] [--md FILE] [--svg FILE] [--only W4[,W1...]]
--   --only runs only those workloads, prints their rows and writes no docs.
local cjson = require "cjson"
local socket = require "socket"
local sandbox = require "spec.support.sandbox"

local opts = { runs = 5, md = "docs/benchmarks.md", svg = "docs/benchmarks.svg" }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--smoke" then opts.smoke = true
    elseif a == "--runs" then i = i + 1; opts.runs = assert(tonumber(arg[i]), "--runs N")
    elseif a == "--md" then i = i + 1; opts.md = arg[i]
    elseif a == "--svg" then i = i + 1; opts.svg = arg[i]
    elseif a == "--only" then
      i = i + 1
      opts.only = {}
      for w in tostring(arg[i]):upper():gmatch("W%d") do opts.only[w] = true end
    else io.stderr:write("usage: bench/run.lua [--smoke] [--runs N] [--md FILE] [--svg FILE] [--only W4[,W1...]]\n") os.exit(2) end
    i = i + 1
  end
end
-- sizes: the issue's, or tiny ones that only prove the suite still runs (CI)
local S = opts.smoke and { w1 = 40, w2 = 300, pumps = 1500, w3 = 4 << 20, w4 = 30, runs = 1 }
                      or { w1 = 2000, w2 = 10000, pumps = 10000, w3 = 1 << 30, w4 = 1000, runs = opts.runs }
local function runs(w) return not opts.only or opts.only[w] end
local CONC = 8                                   -- pixflow's default slots per host, for everyone
local PROMPT = "bench #polls=5 #size=65536"      -- W1: done at the fifth status read; a 64 KiB MP4

-- results go to memory where there is a tmpfs: disk latency is not what is measured
local OUT = (io.open("/dev/shm") and "/dev/shm" or "build") .. "/pixflow-bench-" .. tostring(os.time())
assert(os.execute("mkdir -p " .. OUT))
local ENV = "LUA_PATH='lua/?.lua;lua/?/init.lua;./?.lua;;' LUA_CPATH='build/?.so;;' "

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function clean_out() os.execute("rm -f " .. OUT .. "/*") end
-- Run a command that prints one JSON line last; returns the decoded line.
local function run_json(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  local last = out:match("(%b{})%s*$")
  if not ok or not last then error("benchmark command failed: " .. cmd .. "\n" .. out) end
  return cjson.decode(last)
end

local sbx = sandbox.start{ task_seconds = 5, seed = 7 }
local function stats(gw) return sbx.stats()[gw] end

local results = {}   -- name -> list of values
local function add(name, v) results[name] = results[name] or {}; table.insert(results[name], v) end
local void = {}      -- rows whose request counts differed
local function median(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end
local function mmm(name)
  local l = results[name] or {}
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(l) do lo = math.min(lo, v); hi = math.max(hi, v) end
  return median(l), lo, hi
end

local function say(fmt, ...) io.stderr:write(fmt:format(...), "\n") end

-- ------------------------------------------------------------------ W1
local W1 = not runs("W1") and {} or {
  { name = "pixflow", cmd = ENV .. "lua5.4 bench/w1_pixflow.lua" },
  { name = "floor", cmd = "build/bench-floor" },
  { name = "luasocket", cmd = ENV .. "lua5.4 bench/w1_luasocket.lua" },
  { name = "aiohttp", cmd = "/usr/bin/python3 bench/w1_aiohttp.py" },
}
for r = 1, S.runs do
  for _, c in ipairs(W1) do
    sbx.reset()
    clean_out()
    local res = run_json(("%s %s %d %d %s %s"):format(c.cmd, sh_quote(sbx.base("apimart")), S.w1, CONC, OUT, sh_quote(PROMPT)))
    local st = stats("apimart")
    if res.ok ~= S.w1 or st.submits ~= S.w1 or st.polls ~= 5 * S.w1 or st.downloads ~= S.w1 then
      void["w1_" .. c.name] = ("run %d: %d ok, %d submits, %d polls, %d downloads"):format(r, res.ok, st.submits, st.polls, st.downloads)
    end
    add("w1_cpu_" .. c.name, res.cpu / S.w1)
    add("w1_wall_" .. c.name, res.wall)
    add("w1_rss_" .. c.name, res.rss_kb * 1024)
    say("W1 run %d %-10s cpu %.3f s  wall %.3f s  rss %d KiB  (%d submits, %d polls, %d downloads)", r, c.name,
        res.cpu, res.wall, res.rss_kb, st.submits, st.polls, st.downloads)
  end
end
clean_out()

-- ------------------------------------------------------------------ W2
for r = 1, runs("W2") and S.runs or 0 do
  sbx.reset()
  local res = run_json(("%slua5.4 bench/w2_pixflow.lua %s %d %d"):format(ENV, sh_quote(sbx.base("apimart")), S.w2, S.pumps))
  if res.inflight ~= S.w2 then void.w2 = ("run %d: %d in flight of %d"):format(r, res.inflight, S.w2) end
  for _, k in ipairs{ "bytes_per_task", "quiet_p50", "quiet_p99", "quiet_max", "busy_p50", "busy_p99", "busy_max" } do
    if res[k] >= 0 then add("w2_" .. k, res[k]) end
  end
  say("W2 run %d: %.0f B/task, quiet p99 %.1f us max %.1f us (%d), busy p99 %.1f us max %.1f us (%d)", r,
      res.bytes_per_task, res.quiet_p99 * 1e6, res.quiet_max * 1e6, res.quiet_n, res.busy_p99 * 1e6, res.busy_max * 1e6, res.busy_n)
  -- the same with a journal (a fresh database in the run's directory): every id and end is
  -- recorded by the engine's worker while the frame loop runs
  sbx.reset()
  local jdir = os.tmpname()
  os.remove(jdir)
  os.execute("mkdir -p " .. sh_quote(jdir))
  res = run_json(("%slua5.4 bench/w2_pixflow.lua %s %d %d %s"):format(ENV, sh_quote(sbx.base("apimart")), S.w2, S.pumps,
                                                                     sh_quote(jdir .. "/journal.db")))
  os.execute("rm -rf " .. sh_quote(jdir))
  if res.inflight ~= S.w2 then void.w2j = ("run %d: %d in flight of %d"):format(r, res.inflight, S.w2) end
  for _, k in ipairs{ "quiet_p99", "quiet_max", "busy_p50", "busy_p99", "busy_max" } do
    if res[k] >= 0 then add("w2j_" .. k, res[k]) end
  end
  say("W2 run %d, journal on: quiet p99 %.1f us max %.1f us (%d), busy p99 %.1f us max %.1f us (%d)", r,
      res.quiet_p99 * 1e6, res.quiet_max * 1e6, res.quiet_n, res.busy_p99 * 1e6, res.busy_max * 1e6, res.busy_n)
end

-- ------------------------------------------------------------------ W3
-- curl's URL: a task made with LuaSocket, read once (the file is generated as it is sent)
local function result_url(size)
  local http = require "socket.http"
  local ltn12 = require "ltn12"
  local function call(method, url, body)
    local out = {}
    http.request{ url = url, method = method, sink = ltn12.sink.table(out),
      headers = { authorization = "Bearer bench-key", ["content-type"] = "application/json",
                  ["content-length"] = body and #body or nil },
      source = body and ltn12.source.string(body) }
    return cjson.decode(table.concat(out))
  end
  local base = sbx.base("apimart")
  local r = call("POST", base .. "/v1/videos/generations",
                 cjson.encode{ model = "pixverse-v6", prompt = ("a long take #polls=1 #size=%d"):format(size) })
  local s = call("GET", base .. "/v1/tasks/" .. r.data[1].task_id)
  return s.data.result.videos[1].url[1]
end
for r = 1, runs("W3") and S.runs or 0 do
  sbx.reset()
  clean_out()
  local res = run_json(("%slua5.4 bench/w3_pixflow.lua %s %d %s/pixflow.mp4"):format(ENV, sh_quote(sbx.base("apimart")), S.w3, OUT))
  add("w3_tput_pixflow", res.throughput)
  add("w3_growth_pixflow", res.rss_growth)
  clean_out()
  local url = result_url(S.w3)
  local t0 = socket.gettime()
  assert(os.execute(("curl -sf -o %s/curl.mp4 %s"):format(OUT, sh_quote(url))))
  local wall = socket.gettime() - t0
  add("w3_tput_curl", S.w3 / wall)
  local st = stats("apimart")
  if st.downloads ~= 2 then void.w3 = ("run %d: %d downloads"):format(r, st.downloads) end
  say("W3 run %d: pixflow %.0f MB/s (growth %d KiB), curl %.0f MB/s", r, res.throughput / 1e6, res.rss_growth // 1024, S.w3 / wall / 1e6)
end
clean_out()
os.execute("rmdir " .. OUT)

-- ------------------------------------------------------------------ W4
-- every gateway against fixed 5 s polling; the no-hint ones also against the optimum, the best
-- fixed schedule for the workload's distribution (bench/w4_optimum.lua), on the same tasks
local W4_GATEWAYS = { "apimart", "jiekou", "pixverse", "quickrouter", "dashscope" }
local W4_HINTS = { apimart = true, jiekou = true }
for r = 1, runs("W4") and S.runs or 0 do
  local opt = run_json(("%slua5.4 bench/w4.lua - - %d %d optimum"):format(ENV, S.w4, r))
  add("w4_req_optimum", opt.requests_per_task)
  add("w4_delay_optimum", opt.mean_delay)
  add("w4_fdelay_optimum", opt.fail_delay)
  say("W4 run %d optimum           %.2f requests/task, mean delay %.2f s, early failures %.2f s (%d); polls at %s ...", r,
      opt.requests_per_task, opt.mean_delay, opt.fail_delay, opt.early, opt.first_polls)
  for _, gw in ipairs(W4_GATEWAYS) do
    for _, mode in ipairs{ "pixflow", "fixed" } do
      local res = run_json(("%slua5.4 bench/w4.lua %s %s %d %d %s"):format(ENV, sbx.url, gw, S.w4, r, mode))
      if res.failed ~= res.early or res.early ~= opt.early or res.submits ~= S.w4 then
        void["w4_" .. gw] = ("run %d %s: %d of %d early failures seen as such, %d submits"):format(r, mode, res.failed, opt.early, res.submits)
      end
      add(("w4_req_%s_%s"):format(gw, mode), res.requests_per_task)
      add(("w4_delay_%s_%s"):format(gw, mode), res.mean_delay)
      add(("w4_fdelay_%s_%s"):format(gw, mode), res.fail_delay)
      add(("w4_qps_%s_%s"):format(gw, mode), res.max_qps)
      say("W4 run %d %-11s %-7s %.2f requests/task, mean delay %.2f s, early failures %.2f s (worst %.1f s), max %d requests/s", r, gw, mode,
          res.requests_per_task, res.mean_delay, res.fail_delay, res.fail_worst, res.max_qps)
    end
  end
end
sbx.stop()

-- ------------------------------------------------------------------ W5
-- frame safety: each row in its own process, with its own servers, timeout and temporary
-- directory (bench/w5_suite.lua, bench/w5_pixflow.lua); the worst of up to 3 runs
local w5 = require "bench.w5_suite"
local w5res = runs("W5") and w5.run{ smoke = opts.smoke, runs = math.min(S.runs, 3), log = io.stderr } or {}

-- ------------------------------------------------------------------ the table
local rows = {}   -- { workload, figure, pixflow, alternative, ratio, target, met }
local function fmt_mmm(name, scale, unit, digits)
  local m, lo, hi = mmm(name)
  if not m then return "n/a" end
  local f = "%." .. (digits or 2) .. "f"
  return (f .. " %s (" .. f .. "-" .. f .. ")"):format(m * scale, unit, lo * scale, hi * scale)
end
local function row(w, figure, pix, alt, ratio, target, met, chart)
  if not runs(w) then return end
  rows[#rows + 1] = { w, figure, pix, alt, ratio and ("%.3fx"):format(ratio) or "", target,
                      met == nil and "" or (met and "met" or "MISSED"), chart = chart, ratio_v = ratio }
end
local function ratio_of(a, b) local x, y = mmm(a), mmm(b) return x and y and y ~= 0 and x / y or nil end

for _, alt in ipairs{ { "floor", 1.25 }, { "aiohttp", 0.15 }, { "luasocket", 0.25 } } do
  local r = ratio_of("w1_cpu_pixflow", "w1_cpu_" .. alt[1])
  row("W1", "CPU per task vs " .. alt[1], fmt_mmm("w1_cpu_pixflow", 1e6, "us", 0),
      fmt_mmm("w1_cpu_" .. alt[1], 1e6, "us", 0), r, ("<= %.2fx"):format(alt[2]), r and r <= alt[2],
      { label = "W1 CPU vs " .. alt[1], target = alt[2] })
end
for _, c in ipairs{ "floor", "luasocket", "aiohttp" } do
  row("W1", "wall time vs " .. c, fmt_mmm("w1_wall_pixflow", 1, "s"), fmt_mmm("w1_wall_" .. c, 1, "s"),
      ratio_of("w1_wall_pixflow", "w1_wall_" .. c), "(none)", nil)
  row("W1", "peak RSS vs " .. c, fmt_mmm("w1_rss_pixflow", 1 / 1048576, "MiB", 1), fmt_mmm("w1_rss_" .. c, 1 / 1048576, "MiB", 1),
      ratio_of("w1_rss_pixflow", "w1_rss_" .. c), "(none)", nil)
end
local function abs_row(w, figure, name, scale, unit, target, target_text, digits)
  local m = mmm(name)
  row(w, figure, fmt_mmm(name, scale, unit, digits), "target " .. target_text, m and m / target,
      "<= 1.00x of target", m and m <= target, { label = w .. " " .. figure, target = 1 })
end
abs_row("W2", "RSS per in-flight task", "w2_bytes_per_task", 1 / 1024, "KiB", 8192, "8 KiB")
row("W2", "poll(0) p50, no completion", fmt_mmm("w2_quiet_p50", 1e6, "us", 1), "", nil, "(none)", nil)
abs_row("W2", "poll(0) p99, no completion", "w2_quiet_p99", 1e6, "us", 100e-6, "100 us", 1)
abs_row("W2", "poll(0) max, no completion", "w2_quiet_max", 1e6, "us", 2e-3, "2000 us", 1)
row("W2", "poll(0) p50, with completions", fmt_mmm("w2_busy_p50", 1e6, "us", 1), "", nil, "(none)", nil)
row("W2", "poll(0) p99, with completions", fmt_mmm("w2_busy_p99", 1e6, "us", 1), "", nil, "(none)", nil)
abs_row("W2", "poll(0) max, with completions", "w2_busy_max", 1e6, "us", 2e-3, "2000 us", 1)
row("W2", "journal on: poll(0) p99, with completions", fmt_mmm("w2j_busy_p99", 1e6, "us", 1), "", nil, "(none)", nil)
abs_row("W2", "journal on: poll(0) max, with completions", "w2j_busy_max", 1e6, "us", 1e-3, "1000 us", 1)
abs_row("W2", "journal on: poll(0) max, no completion", "w2j_quiet_max", 1e6, "us", 2e-3, "2000 us", 1)
do
  local r = ratio_of("w3_tput_pixflow", "w3_tput_curl")
  row("W3", "download throughput vs curl -o", fmt_mmm("w3_tput_pixflow", 1e-6, "MB/s", 0), fmt_mmm("w3_tput_curl", 1e-6, "MB/s", 0),
      r, ">= 0.95x", r and r >= 0.95, { label = "W3 throughput vs curl", target = 0.95 })
  abs_row("W3", "RSS growth during the download", "w3_growth_pixflow", 1 / 1024, "KiB", 4 << 20, "4096 KiB", 0)
end
for _, gw in ipairs(W4_GATEWAYS) do
  local hinted = W4_HINTS[gw]
  local function name(what, mode) return ("w4_%s_%s_%s"):format(what, gw, mode) end
  -- without hints the bound is the optimum, 0.9x of fixed polling here: no target against fixed
  local rq = ratio_of(name("req", "pixflow"), name("req", "fixed"))
  row("W4", ("%s requests/task vs fixed 5 s (%s)"):format(gw, hinted and "hints" or "no hints"),
      fmt_mmm(name("req", "pixflow"), 1, ""), fmt_mmm(name("req", "fixed"), 1, ""),
      rq, hinted and "<= 0.50x" or "(none)", hinted and rq and rq <= 0.5 or nil,
      hinted and { label = "W4 " .. gw .. " requests", target = 0.5 } or nil)
  local rd = ratio_of(name("delay", "pixflow"), name("delay", "fixed"))
  row("W4", ("%s mean notice delay vs fixed 5 s"):format(gw), fmt_mmm(name("delay", "pixflow"), 1, "s"),
      fmt_mmm(name("delay", "fixed"), 1, "s"), rd, "<= 1.00x", rd and rd <= 1.0,
      { label = "W4 " .. gw .. " delay", target = 1 })
  if not hinted then
    local ro = ratio_of(name("req", "pixflow"), "w4_req_optimum")
    row("W4", ("%s requests/task vs the optimum"):format(gw), fmt_mmm(name("req", "pixflow"), 1, ""),
        fmt_mmm("w4_req_optimum", 1, ""), ro, "<= 1.10x", ro and ro <= 1.1,
        { label = "W4 " .. gw .. " requests vs optimum", target = 1.1 })
    local rdo = ratio_of(name("delay", "pixflow"), "w4_delay_optimum")
    row("W4", ("%s mean notice delay vs the optimum"):format(gw), fmt_mmm(name("delay", "pixflow"), 1, "s"),
        fmt_mmm("w4_delay_optimum", 1, "s"), rdo, "<= 1.00x", rdo and rdo <= 1.0,
        { label = "W4 " .. gw .. " delay vs optimum", target = 1 })
  end
  local rf = ratio_of(name("fdelay", "pixflow"), name("fdelay", "fixed"))
  row("W4", ("%s early-failure notice delay vs fixed 5 s"):format(gw), fmt_mmm(name("fdelay", "pixflow"), 1, "s"),
      fmt_mmm(name("fdelay", "fixed"), 1, "s"), rf, "<= 2.00x", rf and rf <= 2.0,
      { label = "W4 " .. gw .. " early failures", target = 2 })
  if gw == "dashscope" then
    local q = mmm("w4_qps_dashscope_pixflow")
    row("W4", "dashscope most requests in one second", fmt_mmm("w4_qps_dashscope_pixflow", 1, "", 0), "limit 20",
        q and q / 20, "<= 1.00x of limit", q and q <= 20)
  end
end
do
  local o = mmm("w4_req_optimum")
  if o then
    row("W4", "the optimum (no hints): requests/task", fmt_mmm("w4_req_optimum", 1, ""), "fixed 5 s " .. fmt_mmm("w4_req_pixverse_fixed", 1, ""),
        ratio_of("w4_req_optimum", "w4_req_pixverse_fixed"), "(none)", nil)
    row("W4", "the optimum: mean / early-failure notice delay", fmt_mmm("w4_delay_optimum", 1, "s"),
        fmt_mmm("w4_fdelay_optimum", 1, "s"), nil, "(none)", nil)
  end
end
for _, r in ipairs(runs("W5") and w5.rows(w5res) or {}) do
  local w = r.worst
  row("W5", r[1] .. ": longest call", w and ("%.3f ms (%s)"):format(w.top * 1e3, w.kind) or "n/a", "target 1 ms",
      w and w.top / w5.TARGET, "<= 1.00x of target", w and r.met)
end

local HEAD = { "workload", "figure", "pixflow", "alternative", "ratio", "target", "" }
local function widths()
  local w = {}
  for i, h in ipairs(HEAD) do w[i] = #h end
  for _, r in ipairs(rows) do for i = 1, #HEAD do w[i] = math.max(w[i], #tostring(r[i])) end end
  return w
end
local w = widths()
local function line(cells)
  local out = {}
  for i = 1, #HEAD do out[i] = tostring(cells[i]) .. (" "):rep(w[i] - #tostring(cells[i])) end
  return table.concat(out, "  ")
end
print(line(HEAD))
for _, r in ipairs(rows) do print(line(r)) end
local voids = {}
for k, v in pairs(void) do voids[#voids + 1] = ("VOID %s: request counts differ (%s)"):format(k, v) end
table.sort(voids)
for _, v in ipairs(voids) do print(v) end
if runs("W5") then
  print("\n" .. w5.table(w5res))
  for _, l in ipairs(w5.longest_lines(w5res)) do print(l) end
end
local missed = 0
for _, r in ipairs(rows) do if r[7] == "MISSED" then missed = missed + 1 end end
print(("%d runs per figure (median, min-max); %d targets missed%s"):format(S.runs, missed, opts.smoke and "; smoke sizes, not the real figures" or ""))

if opts.only and not opts.smoke then
  io.stderr:write("bench: --only: the docs were not written\n")
  os.exit(0)
end
if opts.smoke then
  -- a workload passes when it ran, produced every figure and no row was void; no timing counts
  local wl = { W1 = 0, W2 = 0, W3 = 0, W4 = 0, W5 = 0 }
  for _, r in ipairs(rows) do if r[3] == "n/a" then wl[r[1]] = wl[r[1]] + 1 end end
  for k in pairs(void) do wl[k:sub(1, 2):upper()] = (wl[k:sub(1, 2):upper()] or 0) + 1 end
  if runs("W5") and not w5.all_ran(w5res) then wl.W5 = wl.W5 + 1 end   -- a row that ran but did not re-create its situation
  local p, f = 0, 0
  for _, k in ipairs{ "W1", "W2", "W3", "W4", "W5" } do
    if not runs(k) then
      -- not asked for (--only)
    elseif wl[k] == 0 then p = p + 1 else f = f + 1; print("bench-smoke: " .. k .. " did not produce every figure") end
  end
  print(("%d passed, %d failed"):format(p, f))
  os.exit(f == 0 and 0 or 1)
end

-- ------------------------------------------------------------------ docs
local function cmd_out(c) local p = io.popen(c .. " 2>/dev/null") local s = p:read("a") p:close() return (s:gsub("%s+$", "")) end
local md = {}
md[#md + 1] = "# Benchmarks\n"
md[#md + 1] = ("Written by `make bench` (bench/run.lua) on %s: %s, %s cores, %s; %s; Lua %s; Python %s.\n"):format(
  os.date("!%Y-%m-%d"), cmd_out("uname -sm"), cmd_out("nproc"), cmd_out("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'"),
  cmd_out("curl --version | head -1 | cut -d' ' -f1-2"), cmd_out("lua5.4 -v | cut -d' ' -f2"), cmd_out("/usr/bin/python3 -V | cut -d' ' -f2"))
md[#md + 1] = ("Each figure is the median of %d runs (min-max in brackets). Every contestant talks to the same sandbox; " ..
  "a row whose `/_sandbox/stats` request counts differ between contestants is marked VOID. The method, the contestants " ..
  "and what each target means are in [benchmarks-method.md](benchmarks-method.md).\n"):format(S.runs)
md[#md + 1] = "![ratios against their targets](benchmarks.svg)\n"
md[#md + 1] = "| " .. table.concat(HEAD, " | ") .. " |"
md[#md + 1] = "|" .. ("---|"):rep(#HEAD)
for _, r in ipairs(rows) do
  local cells = {}
  for i = 1, #HEAD do cells[i] = tostring(r[i]):gsub("|", "/") end
  md[#md + 1] = "| " .. table.concat(cells, " | ") .. " |"
end
for _, v in ipairs(voids) do md[#md + 1] = "\n" .. v end
md[#md + 1] = ("\n%d targets missed. Why a target is out of reach, where it is: [benchmarks-method.md]"
  .. "(benchmarks-method.md#targets-out-of-reach).\n"):format(missed)
for _, l in ipairs(w5.markdown(w5res)) do md[#md + 1] = l end
local f = assert(io.open(opts.md, "w"))
f:write(table.concat(md, "\n"), "\n")
f:close()

-- the chart: each ratio as a bar, its target as a mark
local dat = opts.svg:gsub("%.svg$", "") .. ".dat"
f = assert(io.open(dat, "w"))
f:write("# label ratio target\n")
local n = 0
for _, r in ipairs(rows) do
  if r.chart and r.ratio_v then
    n = n + 1
    f:write(('%d "%s" %.4f %.4f\n'):format(n - 1, r.chart.label, r.ratio_v, r.chart.target))
  end
end
f:close()
local gp = ([[
set terminal svg size 900,%d font "sans,11" background "white"
set output '%s'
set title "pixflow against its targets (bar: measured ratio; mark: target; log scale)"
set style fill solid 0.7
set logscale x
set xrange [0.01:20]
set yrange [-1:%d]
set ytics nomirror
set grid xtics
unset key
set xlabel "ratio (lower is better, but for W3 throughput)"
plot '%s' using (sqrt($3*0.01)):1:(0.01):($3):($1-0.35):($1+0.35):ytic(2) with boxxyerror lc rgb "#4a7bd0", \
     '%s' using 4:1 with points pt 7 ps 1.2 lc rgb "#d04a4a"
]]):format(120 + 28 * n, opts.svg, n, dat, dat)
local gpf = io.open(dat .. ".gp", "w")
gpf:write(gp)
gpf:close()
if not os.execute("gnuplot " .. dat .. ".gp") then io.stderr:write("bench: gnuplot failed; the chart was not drawn\n") end
os.remove(dat .. ".gp")
io.stderr:write(("bench: wrote %s, %s and %s\n"):format(opts.md, opts.svg, dat))
