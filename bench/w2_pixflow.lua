-- w2_pixflow.lua: benchmark W2: many tasks in flight. Memory per in-flight task, and how long
-- client:poll(0) takes, in pumps where a transfer ended and in pumps where none did.
-- usage: lua5.4 bench/w2_pixflow.lua BASE_URL TASKS PUMPS [JOURNAL]
-- JOURNAL: a journal database path (the records are then written as the tasks change).
-- Prints one JSON line (times in seconds, memory in bytes).
local bench = require "bench.util"
local pixflow = require "pixflow"
local core = require "pixflow.core"

local base, ntasks, npumps, jpath = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4]

-- the first status read a second after acceptance, so that the pumps below see replies
local client = assert(pixflow.new{ provider = "apimart", api_key = "bench-key", base_url = base,
                                   poll = { initial = 1 }, journal = jpath })
collectgarbage("collect")
local rss0 = bench.rss_kb()

-- tasks that run for an hour at the sandbox: they stay in flight for the whole run
local req = { model = "v6", prompt = "a long shot #seconds=3600", duration = 5, resolution = "540p" }
local tasks = {}
for i = 1, ntasks do tasks[i] = assert(client:submit(req)) end
local accepted = 0
while accepted < ntasks do
  client:poll(0.05)
  accepted = 0
  for i = 1, ntasks do if tasks[i].id then accepted = accepted + 1 end end
end
collectgarbage("collect")
local rss1 = bench.rss_kb()

-- a frame loop: one pump per millisecond
local socket = require "socket"
local quiet, busy = {}, {}
local _, _, finished = client._core:_transfers()
for _ = 1, npumps do
  socket.sleep(0.001)
  local t0 = core.now()
  client:poll(0)
  local dt = core.now() - t0
  local _, _, f = client._core:_transfers()
  if f ~= finished then busy[#busy + 1] = dt else quiet[#quiet + 1] = dt end
  finished = f
end

local function pct(list, p)
  if #list == 0 then return -1 end
  table.sort(list)
  return list[math.max(1, math.ceil(#list * p))]
end
print(bench.json{ tasks = ntasks, inflight = client:inflight(), bytes_per_task = (rss1 - rss0) * 1024 / ntasks,
  quiet_n = #quiet, quiet_p50 = pct(quiet, 0.5), quiet_p99 = pct(quiet, 0.99), quiet_max = pct(quiet, 1),
  busy_n = #busy, busy_p50 = pct(busy, 0.5), busy_p99 = pct(busy, 0.99), busy_max = pct(busy, 1) })
client:close()
