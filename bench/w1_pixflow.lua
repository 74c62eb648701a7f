-- w1_pixflow.lua: benchmark W1 with pixflow: submit every task, pump, download each result.
-- usage: lua5.4 bench/w1_pixflow.lua BASE_URL TASKS CONCURRENCY OUTDIR PROMPT
-- Prints one JSON line: {"tasks":N,"ok":N,"cpu":s,"wall":s,"rss_kb":N}.
local bench = require "bench.util"
local pixflow = require "pixflow"

local base, ntasks, conc, outdir, prompt = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4], arg[5]
local w0, c0 = bench.wall(), os.clock()

-- status reads back to back, as the other contestants do (the sandbox ends each task at its fifth
-- read, and its progress counts reads, not time: the adaptive policy has nothing to go by here)
local client = assert(pixflow.new{ provider = "apimart", api_key = "bench-key", base_url = base,
  max_per_host = conc, poll = { adaptive = false, initial = 0, interval = 0.001, backoff = 1, jitter = 0 } })
local ok, failed = 0, 0
client:on_change(function(t)
  if t.status == "succeeded" and t:download_state() == "none" then
    assert(t:start_download(("%s/pixflow-%s.mp4"):format(outdir, t.id)))
  end
  local dl = t:download_state()
  if dl == "done" then ok = ok + 1
  elseif dl == "failed" or (t.done and t.status ~= "succeeded") then failed = failed + 1 end
end)
local tasks = {}
for i = 1, ntasks do
  tasks[i] = assert(client:submit{ model = "v6", prompt = prompt, duration = 5, resolution = "540p" })
end
while ok + failed < ntasks do client:poll(1) end
print(bench.json{ tasks = ntasks, ok = ok, cpu = os.clock() - c0, wall = bench.wall() - w0,
                  rss_kb = bench.peak_rss_kb() })
os.exit(ok == ntasks and 0 or 1)
