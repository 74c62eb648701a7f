-- w1_luasocket.lua: benchmark W1 as a Lua user would write it without pixflow: LuaSocket's
-- blocking http.request and lua-cjson, one request after another.
-- usage: lua5.4 bench/w1_luasocket.lua BASE_URL TASKS CONCURRENCY OUTDIR PROMPT
-- (CONCURRENCY is ignored: LuaSocket's requests block.) Prints the same JSON line as the others.
local bench = require "bench.util"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local base, ntasks, outdir, prompt = arg[1], tonumber(arg[2]), arg[4], arg[5]
local w0, c0 = bench.wall(), os.clock()

local function call(method, url, body)
  local out = {}
  local headers = { authorization = "Bearer bench-key" }
  if body then
    headers["content-type"] = "application/json"
    headers["content-length"] = #body
  end
  local _, code = http.request{ url = url, method = method, headers = headers,
    source = body and ltn12.source.string(body), sink = ltn12.sink.table(out) }
  if code ~= 200 then return nil end
  return cjson.decode(table.concat(out))
end

local ok = 0
local submit = cjson.encode{ model = "pixverse-v6", prompt = prompt, duration = 5, resolution = "540p" }
for i = 1, ntasks do
  local r = call("POST", base .. "/v1/videos/generations", submit)
  local id = r and r.data and r.data[1] and r.data[1].task_id
  local url
  while id do
    local s = call("GET", base .. "/v1/tasks/" .. id)
    local st = s and s.data and s.data.status
    if st == "completed" then url = s.data.result.videos[1].url[1] break end
    if st ~= "pending" and st ~= "processing" then break end
  end
  if url then
    local path = ("%s/luasocket-%d.mp4"):format(outdir, i)
    local f = assert(io.open(path .. ".part", "wb"))
    local _, code = http.request{ url = url, sink = ltn12.sink.file(f) }   -- closes f
    if code == 200 and os.rename(path .. ".part", path) then ok = ok + 1 end
  end
end
print(bench.json{ tasks = ntasks, ok = ok, cpu = os.clock() - c0, wall = bench.wall() - w0,
                  rss_kb = bench.peak_rss_kb() })
os.exit(ok == ntasks and 0 or 1)
