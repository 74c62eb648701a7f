-- w4.lua: benchmark W4, the poll economy, on virtual time. Tasks arrive one per second; their
-- durations follow a log-normal (median 60 s); gateways that give hints report an estimate off
-- by a log-normal error. The engine's clock (clock = "manual") and the sandbox's clock
-- (POST /_sandbox/clock) move together from one due time to the next, so an hour of polling
-- takes seconds and every figure is exact and repeatable for a seed.
-- usage: lua5.4 bench/w4.lua SANDBOX_URL GATEWAY TASKS SEED MODE
--   MODE "pixflow": the client's own policy; "fixed": the same client polling every 5 s.
-- Prints one JSON line: status requests per task (DashScope's task-list pages counted with them),
-- mean and worst delay between a task's end and pixflow noticing it, the most requests (other
-- than submits) in any one second.
local bench = require "bench.util"
local pixflow = require "pixflow"
local sandbox = require "spec.support.sandbox"
local cjson = require "cjson"

local root, gw, ntasks, seed, mode = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4]), arg[5]
local MEDIAN, SIGMA, EST_SIGMA = 60, 0.5, 0.2

math.randomseed(seed)
local function normal()
  local u1, u2 = 1 - math.random(), math.random()
  return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
end
local dur, est = {}, {}
for i = 1, ntasks do
  dur[i] = MEDIAN * math.exp(SIGMA * normal())
  est[i] = dur[i] * math.exp(EST_SIGMA * normal())
end

local function set_clock(now)
  local code = sandbox.request("POST", root .. "/_sandbox/clock", cjson.encode{ now = now })
  assert(code == 200, "sandbox clock: " .. tostring(code))
end
assert(sandbox.request("POST", root .. "/_sandbox/reset", "") == 200)

-- fixed: every task its own status request every 5 s (no task-list rounds, DashScope's included)
local poll = mode == "fixed" and { adaptive = false, initial = 5, interval = 5, backoff = 1, jitter = 0, list = false } or nil
local client = assert(pixflow.new{ provider = gw, api_key = "bench-key", base_url = root .. "/" .. gw,
                                   clock = "manual", poll = poll,
                                   uploader = gw == "jiekou" and function() return "https://e.com/h.png" end or nil })
local wall0 = client._core:_wall_now()
set_clock(wall0)

local now, t_of, finish_of, noticed = 0, {}, {}, {}
client:on_change(function(task)
  if task.done and not noticed[task] then noticed[task] = now end
end)

local per_second, submits_now = {}, 0
local function pump()
  local _, _, before = client._core:_transfers()
  repeat
    client:poll(0.001)   -- returns early only on a change: a short cap keeps each step short
    local running, queued = client._core:_transfers()
  until running == 0 and queued == 0
  local _, _, after = client._core:_transfers()
  local s = math.floor(now)
  per_second[s] = (per_second[s] or 0) + (after - before) - submits_now
  submits_now = 0
end

local nexti, ndone = 1, 0
while true do
  while nexti <= ntasks and nexti - 1 <= now do
    local task = assert(client:submit{ model = nil, prompt = ("@hero walks #seconds=%.3f #estimate=%.3f"):format(dur[nexti], est[nexti]),
                                       references = { { name = "hero", image = "https://e.com/h.png" } }, duration = 5 })
    t_of[task], finish_of[task] = nexti, now + dur[nexti]
    submits_now = submits_now + 1
    nexti = nexti + 1
  end
  pump()
  ndone = 0
  for _ in pairs(noticed) do ndone = ndone + 1 end
  if ndone >= ntasks then break end
  local dt = client._core:_next_due()
  if nexti <= ntasks and (not dt or (nexti - 1) - now < dt) then dt = (nexti - 1) - now end
  assert(dt, "nothing is due and tasks are unfinished")
  if dt < 0 then dt = 0 end
  client._core:_advance_clock(dt)
  now = now + dt
  set_clock(wall0 + now)
end

local stats = cjson.decode(select(2, sandbox.request("GET", root .. "/_sandbox/stats")))[gw]
local sum, worst, failed = 0, 0, 0
for task, at in pairs(noticed) do
  if task.status ~= "succeeded" then failed = failed + 1 end
  local d = at - finish_of[task]
  sum = sum + d
  if d > worst then worst = d end
end
local qps = 0
for _, n in pairs(per_second) do if n > qps then qps = n end end
set_clock(0)
print(bench.json{ gateway = gw, mode = mode, tasks = ntasks, failed = failed,
                  -- status requests and task-list pages (DashScope's rounds poll with those)
                  requests_per_task = (stats.polls + stats.lists) / ntasks, lists_per_task = stats.lists / ntasks,
                  mean_delay = sum / ntasks,
                  worst_delay = worst, max_qps = qps, submits = stats.submits, virtual_seconds = now })
