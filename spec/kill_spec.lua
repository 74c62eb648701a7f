-- Nothing paid for is lost: the command-line tool is killed with SIGKILL at random moments of a
-- five-task batch, twenty times over, then `pixflow resume` finishes the rest. Every task must
-- end downloaded exactly once, and the sandbox must show no task created twice.
--
-- The batch runs on DashScope, the gateway that lists its tasks: a kill that lands after a submit
-- reached the gateway but before its answer was journaled leaves an unconfirmed submit, which only
-- the gateway's list can settle (found, or never created). On gateways without a list that case
-- is reported to the user, never resubmitted (journal_spec covers it).
local cjson = require "cjson"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local function sleep(s)
  local t0 = require("pixflow").now()
  while require("pixflow").now() - t0 < s do end
end

describe("a batch killed twenty times, then resumed", function()
  it("downloads every task exactly once and creates none twice", function()
    local sbx = sandbox.start{ task_seconds = 1.0 }
    local dir = util.tmpdir()
    finally(function() sbx.stop(); os.execute("rm -rf " .. dir) end)
    local items = {}
    for i = 1, 5 do
      items[i] = { output = ("shot-%d.mp4"):format(i), provider = "dashscope",
                   prompt = ("@hero in shot %d of the storyboard"):format(i),
                   references = { { name = "hero", image = "https://example.com/hero.png" } } }
    end
    local mf = assert(io.open(dir .. "/shots.json", "w"))
    mf:write(cjson.encode(items))
    mf:close()
    local env = ("DASHSCOPE_API_KEY=k XDG_STATE_HOME=%s/state"):format(dir)
    local cmd = ("%s bin/pixflow batch %s/shots.json --sandbox %s --json"):format(env, dir, sbx.url)
    math.randomseed(20261121)
    for run = 1, 20 do
      local p = assert(io.popen(("%s > %s/run-%d.log 2>&1 & echo $!"):format(cmd, dir, run), "r"))
      local pid = tonumber(p:read("l"))
      p:close()
      sleep(math.random() * 2.5)
      os.execute(("kill -9 %d 2>/dev/null; while kill -0 %d 2>/dev/null; do sleep 0.01; done"):format(pid, pid))
    end
    local last_kill = require("pixflow").now()
    local _, resumed = util.run(("%s bin/pixflow resume --poll 0.3 --timeout 60"):format(env))
    -- a submit killed before it left leaves an intent that the gateway's list can only rule out
    -- once the next intent exists or 15 s have passed; then the batch, run once more to its end,
    -- submits what was never created (and only that)
    local wait = 16 - (require("pixflow").now() - last_kill)
    if wait > 0 then sleep(wait) end
    local status, out = util.run(cmd:gsub(" %-%-json$", ""))
    out = resumed .. "\n" .. out
    local st = sbx.stats().dashscope
    -- every output complete, downloaded (recorded) exactly once, and no task made twice
    local downloaded, keys = {}, {}
    for _, rec in ipairs(util.journal_events(dir .. "/state/pixflow/journal.db")) do
      if rec.ev == "downloaded" then downloaded[rec.path] = (downloaded[rec.path] or 0) + 1 end
      if rec.ev == "intent" then keys[#keys + 1] = rec.key end
    end
    for i = 1, 5 do
      local path = ("%s/shot-%d.mp4"):format(dir, i)
      assert.equal("ftyp", (util.read(path) or ""):sub(5, 8), path .. "\n" .. out)
      assert.equal(1, downloaded[path], path .. " downloaded " .. tostring(downloaded[path]) .. " times")
    end
    assert.equal(5, st.tasks, "tasks created: " .. st.tasks .. "\n" .. out)
    assert.equal(0, status, out)
  end)
end)
