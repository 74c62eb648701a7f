-- A resolver that never answers (issue 14): libcurl's threaded resolver used to be joined
-- inside the pump when a connect timed out (poll(0) waited out getaddrinfo: 5 s) and inside
-- close() when a transfer still resolving was removed. spec/support/hangdns.c, preloaded into
-- a child process, makes getaddrinfo of *.hang.test sleep 30 s; nothing leaves the machine.
-- The bounds asserted (1 s against 30 s of hanging) are far from any machine's speed: what is
-- checked is that nothing waits for the resolver, not how fast a pump is.
local util = require "spec.support.util"

local function child(dir, body)
  local so = dir .. "/hangdns.so"
  if not util.exists(so) then
    local status, out = util.run(("cc -shared -fPIC -O1 -o %s spec/support/hangdns.c -ldl"):format(so))
    assert.equal(0, status, out)
  end
  local script = dir .. "/child.lua"
  local f = assert(io.open(script, "w"))
  f:write([[
local pixflow = require "pixflow"
local core = require "pixflow.core"
local function timed(fn) local a = core.now(); fn(); return core.now() - a end
]] .. body)
  f:close()
  return util.run(("HANGDNS_SECONDS=30 LD_PRELOAD=\"${LD_PRELOAD:+$LD_PRELOAD:}%s\" LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
    .. "LUA_CPATH='build/?.so;;' timeout 60 lua5.4 %s"):format(so, script))
end

describe("a resolver that never answers", function()
  local dir
  before_each(function() dir = util.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("costs no pump more than an instant when the connect times out, and the task says why", function()
    local status, out = child(dir, [[
local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = "http://gw.hang.test:9/apimart",
                              timeouts = { connect = 0.3 }, retry = { submit_attempts = 1 } })
local t = assert(c:submit({ model = "v6", prompt = "p" }))
local worst, t0 = 0, core.now()
while not t.done and core.now() - t0 < 10 do
  worst = math.max(worst, timed(function() c:poll(0) end))
  os.execute("sleep 0.01")
end
print(("status=%s code=%s worst=%.3f"):format(t.status, t.error and t.error.code or "-", worst))
c:close()
]])
    assert.equal(0, status, out)
    local st, code, worst = out:match("status=(%S+) code=(%S+) worst=([%d.]+)")
    assert.equal("failed", st, out)
    assert.equal("connect_timeout", code, out)
    assert.is_true(tonumber(worst) < 1, out)
  end)

  it("lets close() and the process end at once while a name is still being resolved", function()
    local a = os.time()
    local status, out = child(dir, [[
local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = "http://gw.hang.test:9/apimart" })
assert(c:submit({ model = "v6", prompt = "p" }))
for _ = 1, 10 do c:poll(0.01) end
print(("close=%.3f"):format(timed(function() c:close() end)))
]])
    assert.equal(0, status, out)
    assert.is_true(tonumber(out:match("close=([%d.]+)")) < 1, out)
    assert.is_true(os.time() - a < 10, "the process waited for the resolver")
  end)
end)
