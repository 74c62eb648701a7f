-- pixflow.follow: the one loop that follows tasks to their ends and files. Every wait of the Lua
-- layer (task:wait, cancel, download, all/race outside a flow, Flow:wait, resume, batch, the
-- command's status) goes through it; a Follower steps without blocking for a game loop.
local pixflow = require "pixflow"
local follow = require "pixflow.follow"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local POLL = { initial = 0.05, interval = 0.1, jitter = 0 }

describe("the one wait loop", function()
  it("no Lua module pumps a client by hand: follow.lua is the only loop", function()
    -- client.lua defines poll and _pump (they call the core's poll); Flow:step pumps each of its
    -- clients once without waiting (a step, not a loop). Anything else calls pixflow.follow.
    local allowed = { ["lua/pixflow/follow.lua"] = 4, ["lua/pixflow/client.lua"] = 2,
                      ["lua/pixflow/workflow.lua"] = 1 }
    local _, list = util.run("ls lua/pixflow/*.lua bin/pixflow")
    for path in list:gmatch("[^\n]+") do
      local n = 0
      for line in util.read(path):gmatch("[^\n]*") do
        local code = line:gsub("%-%-.*$", ""):gsub("^%s*function .*", "")
        for _ in code:gmatch(":poll%(") do n = n + 1 end
        for _ in code:gmatch(":_pump%(") do n = n + 1 end
      end
      assert.equal(allowed[path] or 0, n, path .. " pumps a client outside pixflow.follow")
    end
  end)

  it("loop: a deadline ends it with expired's results, and no single poll passes the deadline", function()
    local polls = {}
    local fake = { poll = function(_, t) polls[#polls + 1] = t end }
    local t0 = pixflow.now()
    local a, b = follow.loop{ clients = { fake }, slice = 10, deadline = t0 + 0.05,
                              check = function() return false end,
                              expired = function() return nil, "late" end }
    assert.is_nil(a)
    assert.equal("late", b)
    assert.is_true(#polls >= 1)
    for _, t in ipairs(polls) do assert.is_true(t <= 0.05 + 1e-9, tostring(t)) end
  end)

  it("loop: check's results come back as they are (nil and an error included)", function()
    local n = 0
    local fake = { poll = function() n = n + 1 end }
    local a, b, c = follow.loop{ clients = { fake }, check = function()
      if n < 3 then return false end
      return true, nil, "err", "x"
    end }
    assert.equal(3, n)
    assert.is_nil(a)
    assert.equal("err", b)
    assert.equal("x", c)
  end)

  describe("a Follower", function()
    local sbx
    setup(function() sbx = sandbox.start{ task_seconds = 0.3 } end)
    teardown(function() sbx.stop() end)

    it("follows tasks of two clients to their files, one non-blocking step at a time", function()
      local dir = util.tmpdir()
      local a = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"), poll = POLL })
      local d = assert(pixflow.new{ provider = "jiekou", api_key = "k", base_url = sbx.base("jiekou"), poll = POLL })
      local ta = assert(a:submit{ prompt = "one" })
      local td = assert(d:submit{ prompt = "two @hero",
                                  references = { { name = "hero", image = "https://e.com/h.png" } } })
      local ended = {}
      local f = follow.new{ on_update = function(item, now) if now then ended[#ended + 1] = item.name end end }
      f:add(ta, { output = dir .. "/a/one.mp4", parents = true, name = "a" })
      f:add(td, { output = dir .. "/two.mp4", name = "d" })
      f:add(assert(a:submit{ prompt = "bad #fail" }), { output = dir .. "/bad.mp4", name = "bad" })
      local deadline, slowest = pixflow.now() + 20, 0
      while true do
        local t0 = pixflow.now()
        local done = f:step(0)
        slowest = math.max(slowest, pixflow.now() - t0)
        if done then break end
        assert.is_true(pixflow.now() < deadline, "the tasks never ended")
        os.execute("sleep 0.01")
      end
      assert.is_true(slowest < 0.25, ("a step took %.3f s"):format(slowest))
      table.sort(ended)
      assert.same({ "a", "bad", "d" }, ended)
      assert.equal("downloaded", f.items[1].status)
      assert.equal("ftyp", util.read(dir .. "/a/one.mp4"):sub(5, 8))
      assert.equal("downloaded", f.items[2].status)
      assert.equal("failed", f.items[3].status)
      assert.is_nil(f.items[3].path)
      assert.is_false(util.exists(dir .. "/bad.mp4"))
      a:close()
      d:close()
    end)
  end)
end)
