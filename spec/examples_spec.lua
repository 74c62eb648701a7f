-- The examples, run against the sandbox as a user would run them: the storyboard (with its
-- fallback), the batch, the game loop (which reports its worst frame) and the embedding C host.
-- Each writes into a directory that does not exist yet (a fresh checkout has no out/).
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local ENV = "LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;'"

describe("examples", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.6, reset = true, remove = { "examples/out" } },
                 function(s, d) sbx, dir = s, d end)

  it("storyboard: a shot and two extensions, falling back when the first gateway refuses", function()
    local status, out = util.run(("%s APIMART_API_KEY=noquota PIXVERSE_API_KEY=k PIXFLOW_SANDBOX=%s "
      .. "lua5.4 examples/storyboard.lua %s/story/new"):format(ENV, sbx.url, dir))
    assert.equal(0, status, out)
    assert.matches("shot 1: pixverse task %d+ %(2 gateways tried%)", out)
    for i = 1, 3 do assert.equal("ftyp", util.read(("%s/story/new/storyboard-%d.mp4"):format(dir, i)):sub(5, 8)) end
    local st = sbx.stats()
    assert.equal(0, st.apimart.tasks)
    assert.equal(3, st.pixverse.tasks)
  end)

  it("storyboard without keys says that no API key is set and which variables, before sending", function()
    local status, out = util.run(("%s env -u APIMART_API_KEY -u PIXVERSE_API_KEY PIXFLOW_SANDBOX=%s "
      .. "lua5.4 examples/storyboard.lua %s/nokeys"):format(ENV, sbx.url, dir))
    assert.equal(1, status, out)
    assert.matches("no API key", out)
    assert.matches("APIMART_API_KEY", out)
    assert.matches("PIXVERSE_API_KEY", out)
    assert.is_nil(out:find("failed at the gateway", 1, true), out)
    assert.is_nil(out:find("traceback", 1, true), out)
    local st = sbx.stats()
    assert.equal(0, st.apimart.submits + st.pixverse.submits)
  end)

  it("batch: five shots from examples/shots.json, then nothing to do on a second run", function()
    local cmd = ("%s APIMART_API_KEY=k DASHSCOPE_API_KEY=k PIXVERSE_API_KEY=k PIXFLOW_SANDBOX=%s "
      .. "lua5.4 examples/batch.lua"):format(ENV, sbx.url)
    local status, out = util.run(cmd)
    assert.equal(0, status, out)
    assert.matches("5 items: 5 downloaded", out)
    status, out = util.run(cmd)
    assert.equal(0, status, out)
    assert.matches("5 items: 5 done", out)
    local st = sbx.stats()
    assert.equal(5, st.apimart.tasks + st.dashscope.tasks + st.pixverse.tasks)
  end)

  it("game loop: three videos at 60 fps, reporting the worst frame", function()
    local status, out = util.run(("%s APIMART_API_KEY=k PIXFLOW_SANDBOX=%s lua5.4 examples/game_loop.lua %s/game/new")
      :format(ENV, sbx.url, dir))
    assert.equal(0, status, out)
    local worst = tonumber(out:match("pixflow's worst frame: ([%d.]+) ms"))
    assert.is_not_nil(worst, out)
    print(("\n    game loop: worst frame in pixflow %.3f ms"):format(worst))
    for i = 1, 3 do assert.equal("ftyp", util.read(("%s/game/new/castle-%d.mp4"):format(dir, i)):sub(5, 8)) end
  end)

  it("the C host embeds Lua and pixflow and drives a generation from its frame loop", function()
    -- the argument is the gateway's base URL (here the sandbox's apimart), not the sandbox's root
    local status, out = util.run(("APIMART_API_KEY=k build/examples/host %s %s/host/new/host.mp4")
      :format(sbx.base("apimart"), dir))
    assert.equal(0, status, out)
    assert.matches("worst frame in pixflow", out)
    assert.equal("ftyp", util.read(dir .. "/host/new/host.mp4"):sub(5, 8))
    assert.equal(1, sbx.stats().apimart.tasks)
  end)

  it("fusion writes its MP4 into a directory it creates", function()
    local status, out = util.run(("%s APIMART_API_KEY=k PIXFLOW_BASE_URL=%s PIXFLOW_POLL=0.3 "
      .. "lua5.4 examples/fusion.lua %s/fusion/new/f.mp4"):format(ENV, sbx.base("apimart"), dir))
    assert.equal(0, status, out)
    assert.equal("ftyp", util.read(dir .. "/fusion/new/f.mp4"):sub(5, 8))
  end)
end)
