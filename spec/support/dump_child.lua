-- spec/support/dump_child.lua: the process spec/dump_spec.lua takes core dumps of. It makes a
-- client whose key exists in this process only as what pixflow keeps (the key is joined here
-- from two halves, so neither argv nor the script holds it whole), runs a task to its end, then
-- has a status poll in flight, and stops at each point for the spec to dump it.
--   lua5.4 dump_child.lua SANDBOX_URL KEY_HALF_1 KEY_HALF_2 DIR
-- Prints its pid, then "idle" and "in_flight", each time waiting for DIR/go1, DIR/go2.
local socket = require "socket"
local pixflow = require "pixflow"
local url, a, b, dir = arg[1], arg[2], arg[3], arg[4]

local f = assert(io.open("/proc/self/stat"))
local pid = f:read("n")
f:close()
-- a string that stays live, made the same way: a dump that does not show it shows nothing
MARKER = table.concat{ "live-", a:sub(-6), "-", b:sub(1, 6), "-marker" }

local function stop(word, go)
  collectgarbage()
  collectgarbage()
  io.write(word, "\n")
  io.flush()
  local deadline = socket.gettime() + 60             -- never outlives a spec that died
  while not io.open(dir .. "/" .. go) and socket.gettime() < deadline do socket.sleep(0.02) end
end

local c = assert(pixflow.new{ provider = "apimart", api_key = a .. b, base_url = url .. "/apimart",
                              poll = { initial = 0.05, interval = 0.05, jitter = 0 } })
io.write(pid, "\n")
io.flush()
local t = assert(c:submit{ prompt = "a cat" })
assert(t:wait{ timeout = 10 })
stop("idle", "go1")
-- the spec stalls status replies now: this task's first poll stays on the wire
local t2 = assert(c:submit{ prompt = "a dog" })
local deadline = socket.gettime() + 1
while socket.gettime() < deadline do c:poll(0.05) end
assert(t2.status == "queued", t2.status)
stop("in_flight", "go2")
c:close()
