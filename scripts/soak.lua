-- soak.lua: many tasks across every gateway against the sandbox with injected faults, for a
-- long time (make soak: one hour, 20,000 tasks, 5% of requests spoiled). Checks: resident
-- memory flat after warm-up, no task lost (every submit ends known, in the journal), none
-- duplicated (the sandbox made no task that pixflow does not know or could not know).
-- usage: lua5.4 scripts/soak.lua [seconds] [tasks] [fault rate]
local pixflow = require "pixflow"
local journal = require "pixflow.journal"
local sandbox = require "spec.support.sandbox"
local socket = require "socket"

local SECONDS = tonumber(arg[1]) or 3600
local TASKS = tonumber(arg[2]) or 20000
local RATE = tonumber(arg[3]) or 0.05
local GATEWAYS = { "apimart", "pixverse", "quickrouter", "dashscope", "jiekou", "baicai" }
local IN_FLIGHT = 48

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))
local jpath = dir .. "/journal.db"
local sbx = sandbox.start{ task_seconds = 0.5, seed = 42 }

-- Faults a gateway really shows, spread over every route; each request has RATE chance of one.
local per = RATE / 9
sbx.faults{
  { route = "status", action = "reset", rate = per },
  { route = "status", action = "reply", status = 503, retry_after = 0, body = "", rate = per },
  { route = "status", action = "truncate", rate = per },
  { route = "submit", action = "reply", status = 429, retry_after = 0, body = "{}", rate = per },
  { route = "submit", action = "reply", status = 503, retry_after = 0, body = "", rate = per },
  { route = "submit", action = "reset_after", rate = per },      -- unconfirmed (DashScope: found)
  { route = "download", action = "cut", fraction = 0.6, rate = per },
  { route = "upload", action = "reply", status = 502, body = "<html>bad gateway</html>", rate = per },
  { route = "result", action = "reset", rate = per },
}

local function rss_kb()
  local f = io.open("/proc/self/status")
  local kb = f and f:read("a"):match("VmRSS:%s+(%d+)")
  if f then f:close() end
  return tonumber(kb)
end

local clients = {}
for _, p in ipairs(GATEWAYS) do
  clients[p] = assert(pixflow.new{
    provider = p, api_key = "sk-soak-" .. p, base_url = sbx.base(p), journal = jpath,
    poll = { initial = 0.2, interval = 0.2, max = 0.5 },
    retry = { base = 0.05, max = 0.5, after_max = 1, lookup_delay = 0.2 },
    uploader = p == "jiekou" and function(path) return "https://cdn.example.com/" .. path:match("[^/]+$") end or nil,
  })
end
local IMAGES = { "spec/fixtures/images/hero.png", "spec/fixtures/images/city.jpg", "spec/fixtures/images/cat.webp" }

local live, counts = {}, { submitted = 0, succeeded = 0, downloaded = 0, failed = 0, unconfirmed = 0,
                               accepted = 0, rejected = 0 }
local by_gateway = {}
for _, p in ipairs(GATEWAYS) do by_gateway[p] = { accepted = 0, unconfirmed = 0 } end
local kinds = {}
local samples = {}
local t0 = socket.gettime()
local next_sample = t0
local n = 0

local function finish(entry, outcome, err)
  counts[outcome] = counts[outcome] + 1
  if err then kinds[err.kind .. "/" .. tostring(err.code)] = (kinds[err.kind .. "/" .. tostring(err.code)] or 0) + 1 end
  local t = entry.task
  if t.id then
    counts.accepted = counts.accepted + 1
    by_gateway[entry.p].accepted = by_gateway[entry.p].accepted + 1
  elseif t.status == "unconfirmed" then
    by_gateway[entry.p].unconfirmed = by_gateway[entry.p].unconfirmed + 1
  end
  t:close()
  os.remove(entry.out)
end

while true do
  local now = socket.gettime()
  local elapsed = now - t0
  -- pace: n tasks by now, to reach TASKS at SECONDS
  while n < TASKS and elapsed < SECONDS and #live < IN_FLIGHT and n < TASKS * elapsed / SECONDS + 1 do
    n = n + 1
    local p = GATEWAYS[n % #GATEWAYS + 1]
    local img = IMAGES[n % #IMAGES + 1]
    local task, err = clients[p]:submit({ prompt = "@hero soak " .. n, references = { { name = "hero", image = img } } },
                                        { output = dir .. "/" .. n .. ".mp4" })
    counts.submitted = counts.submitted + 1
    if task then
      live[#live + 1] = { task = task, p = p, out = dir .. "/" .. n .. ".mp4" }
    else
      counts.rejected = counts.rejected + 1
      kinds["submit/" .. err.kind] = (kinds["submit/" .. err.kind] or 0) + 1
    end
  end
  for _, p in ipairs(GATEWAYS) do clients[p]:poll(0) end
  local keep = {}
  for _, e in ipairs(live) do
    local t = e.task
    if t.status == "succeeded" then
      local state, derr = t:download_state()
      if state == "none" then
        assert(t:start_download(e.out))
        keep[#keep + 1] = e
      elseif state == "done" then
        counts.succeeded = counts.succeeded + 1
        local f = assert(io.open(e.out, "rb"))
        assert(f:read(8):sub(5, 8) == "ftyp", "not an MP4: " .. e.out)
        f:close()
        finish(e, "downloaded")
      elseif state == "failed" then
        counts.succeeded = counts.succeeded + 1
        finish(e, "failed", derr)
      else
        keep[#keep + 1] = e
      end
    elseif t.done then
      finish(e, t.status == "unconfirmed" and "unconfirmed" or "failed", t.error)
    elseif t.halted then
      finish(e, "failed", t.error)
    else
      keep[#keep + 1] = e
    end
  end
  live = keep
  if now >= next_sample then
    collectgarbage("collect")
    samples[#samples + 1] = { t = math.floor(elapsed), rss = rss_kb(), done = counts.downloaded + counts.failed + counts.unconfirmed }
    io.stderr:write(("soak: %5d s  %6d submitted  %6d downloaded  %4d failed  %4d unconfirmed  %4d in flight  rss %d kB\n")
      :format(math.floor(elapsed), counts.submitted, counts.downloaded, counts.failed, counts.unconfirmed, #live, samples[#samples].rss))
    next_sample = now + math.max(1, SECONDS / 60)
  end
  if (n >= TASKS or elapsed >= SECONDS) and #live == 0 then break end
  socket.sleep(0.002)
end

-- verdicts
local stats = sbx.stats()
local failures = {}
local function check(ok, msg) if not ok then failures[#failures + 1] = msg end end
local total_tasks = 0
for _, p in ipairs(GATEWAYS) do
  local g = by_gateway[p]
  total_tasks = total_tasks + stats[p].tasks
  -- every task the sandbox made is one pixflow knows, or the one an unconfirmed submit may have made
  check(stats[p].tasks >= g.accepted and stats[p].tasks <= g.accepted + g.unconfirmed,
        ("%s: the sandbox made %d tasks; pixflow knows %d and has %d unconfirmed"):format(p, stats[p].tasks, g.accepted, g.unconfirmed))
end
local jtasks = assert(journal.read(jpath))
local open = 0
for _, t in ipairs(jtasks) do if t.state == "open" or t.state == "damaged" then open = open + 1 end end
check(#jtasks == counts.submitted - counts.rejected, ("the journal has %d tasks, %d were submitted"):format(#jtasks, counts.submitted - counts.rejected))
check(open == 0, ("%d tasks are still open in the journal"):format(open))
local ended = counts.downloaded + counts.failed + counts.unconfirmed
check(ended == counts.submitted - counts.rejected, ("%d tasks ended of %d"):format(ended, counts.submitted - counts.rejected))
-- memory: after the first tenth of the run, resident size may not grow
local warm = samples[math.max(2, #samples // 10)].rss
local peak, last = 0, samples[#samples].rss
for i = math.max(2, #samples // 10), #samples do peak = math.max(peak, samples[i].rss) end
check(peak - warm < 8 * 1024, ("resident memory grew from %d kB to %d kB after warm-up"):format(warm, peak))

local faults = 0
for _, p in ipairs(GATEWAYS) do faults = faults + stats[p].faults end
print(("soak: %d s, %d tasks submitted (%d refused before sending), %d downloaded and byte-checked, %d failed, %d unconfirmed")
  :format(math.floor(socket.gettime() - t0), counts.submitted, counts.rejected, counts.downloaded, counts.failed, counts.unconfirmed))
print(("soak: the sandbox made %d tasks, pixflow knows %d of them by id; %d faults injected"):format(total_tasks, counts.accepted, faults))
print(("soak: resident memory after warm-up %d kB, peak %d kB, at the end %d kB"):format(warm, peak, last))
local ks = {}
for k, v in pairs(kinds) do ks[#ks + 1] = ("%s=%d"):format(k, v) end
table.sort(ks)
print("soak: errors by kind/code: " .. (#ks > 0 and table.concat(ks, " ") or "none"))
for _, p in ipairs(GATEWAYS) do clients[p]:close() end
sbx.stop()
os.execute("rm -rf " .. dir)
if #failures > 0 then
  for _, f in ipairs(failures) do print("soak: FAILED: " .. f) end
  os.exit(1)
end
print("soak: passed (no task lost, none duplicated, memory flat)")
