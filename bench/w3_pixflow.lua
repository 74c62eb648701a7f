-- w3_pixflow.lua: benchmark W3: one large result downloaded by pixflow. Throughput of the
-- download alone, and how much the resident set grew while it ran.
-- usage: lua5.4 bench/w3_pixflow.lua BASE_URL BYTES OUTFILE
local bench = require "bench.util"
local pixflow = require "pixflow"

local base, size, out = arg[1], tonumber(arg[2]), arg[3]
local client = assert(pixflow.new{ provider = "apimart", api_key = "bench-key", base_url = base,
  poll = { initial = 0, interval = 0.01, jitter = 0 } })
local task = assert(client:submit{ model = "v6", prompt = ("a long take #polls=1 #size=%d"):format(size),
                                   duration = 5, resolution = "540p" })
assert(task:wait{ timeout = 60 })
collectgarbage("collect")
-- reset the peak (VmHWM) to the current resident set, so the peak below is the download's
local f = io.open("/proc/self/clear_refs", "w")
if f then f:write("5") f:close() end
local rss0 = bench.rss_kb()
local t0 = bench.wall()
local ok, err = task:download(out)
local wall = bench.wall() - t0
assert(ok, tostring(err))
print(bench.json{ bytes = size, wall = wall, throughput = size / wall,
                  rss_growth = (bench.peak_rss_kb() - rss0) * 1024 })
client:close()
