-- The examples, run against the sandbox as a user would run them: the storyboard (with its
-- fallback), the batch, the game loop (which reports its worst frame) and the embedding C host.
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local ENV = "LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;'"

describe("examples", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.6, reset = true, remove = { "examples/out" } },
                 function(s, d) sbx, dir = s, d end)

  it("storyboard: a shot and two extensions, falling back when the first gateway refuses", function()
    local status, out = util.run(("%s APIMART_API_KEY=noquota PIXVERSE_API_KEY=k PIXFLOW_SANDBOX=%s "
      .. "lua5.4 examples/storyboard.lua %s"):format(ENV, sbx.url, dir))
    assert.equal(0, status, out)
    assert.matches("shot 1: pixverse task %d+ %(2 gateways tried%)", out)
    for i = 1, 3 do assert.equal("ftyp", util.read(("%s/storyboard-%d.mp4"):format(dir, i)):sub(5, 8)) end
    local st = sbx.stats()
    assert.equal(0, st.apimart.tasks)
    assert.equal(3, st.pixverse.tasks)
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
    local status, out = util.run(("%s APIMART_API_KEY=k PIXFLOW_SANDBOX=%s lua5.4 examples/game_loop.lua %s")
      :format(ENV, sbx.url, dir))
    assert.equal(0, status, out)
    local worst = tonumber(out:match("pixflow's worst frame: ([%d.]+) ms"))
    assert.is_not_nil(worst, out)
    print(("\n    game loop: worst frame in pixflow %.3f ms"):format(worst))
    for i = 1, 3 do assert.equal("ftyp", util.read(("%s/castle-%d.mp4"):format(dir, i)):sub(5, 8)) end
  end)

  it("the C host embeds Lua and pixflow and drives a generation from its frame loop", function()
    local status, out = util.run(("APIMART_API_KEY=k build/examples/host %s %s/host.mp4"):format(sbx.url, dir))
    assert.equal(0, status, out)
    assert.matches("worst frame in pixflow", out)
    assert.equal("ftyp", util.read(dir .. "/host.mp4"):sub(5, 8))
  end)
end)
