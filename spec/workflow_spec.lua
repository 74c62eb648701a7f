-- Workflows (await, all, race, stepping), chains (extend_from a task that has not finished),
-- fallback across gateways, and provider configuration.
local pixflow = require "pixflow"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local sbx
local POLL = { initial = 0.05, interval = 0.1, jitter = 0 }
local function client(p, key)
  return assert(pixflow.new{ provider = p or "apimart", api_key = key or "k", base_url = sbx.base(p or "apimart"), poll = POLL })
end
local HERO = { { name = "hero", image = "https://e.com/h.png" } }

describe("workflows", function()
  setup(function() sbx = sandbox.start{ task_seconds = 0.3 } end)
  teardown(function() sbx.stop() end)
  before_each(function() sbx.reset() end)

  it("run: await yields, race gives the first to end, results come back", function()
    local c = client()
    local a, first_is_quick, status = pixflow.run(function()
      local slow = assert(c:submit{ prompt = "slow #seconds=1" })
      local quick = assert(c:submit{ prompt = "quick #seconds=0.2" })
      local first = pixflow.race{ slow, quick }
      assert(slow:await())
      return "ended", first == quick, slow.status
    end)
    assert.equal("ended", a)
    assert.is_true(first_is_quick)
    assert.equal("succeeded", status)
    c:close()
  end)

  it("all fails with the first failure, and names the task", function()
    local c = client()
    local ok, err, failed = pixflow.run(function()
      local good = assert(c:submit{ prompt = "good" })
      local bad = assert(c:submit{ prompt = "bad #fail" })
      return pixflow.all{ good, bad }
    end)
    assert.is_nil(ok)
    assert.equal("failed", err.kind)
    assert.equal("failed", failed.status)
    c:close()
  end)

  it("an error raised inside a workflow comes back with its traceback", function()
    local ok, err = pixflow.run(function() error("boom") end)
    assert.is_nil(ok)
    assert.matches("boom", err.message)
    assert.matches("stack traceback", err.message)
  end)

  it("outside a workflow, await and all block", function()
    local c = client()
    local t1, t2 = assert(c:submit{ prompt = "a" }), assert(c:submit{ prompt = "b" })
    assert.is_true(pixflow.all{ t1, t2 })
    assert.is_true(t1:await())
    c:close()
  end)

  it("a flow advances one step per frame, never blocking, also through client:poll(0)", function()
    local c = client()
    local flow = pixflow.new_flow(function()
      local t = assert(c:submit{ prompt = "frame by frame" })
      return t:await()
    end)
    assert.is_false(flow:step())          -- submitted; waiting
    local frames, worst = 0, 0
    while not flow.done do
      local t0 = pixflow.now()
      c:poll(0)                           -- the game's own pump steps the flow
      worst = math.max(worst, pixflow.now() - t0)
      frames = frames + 1
      local f0 = pixflow.now()
      while pixflow.now() - f0 < 0.005 do end
    end
    assert.is_true(frames > 5)
    assert.is_true(flow:result())
    assert.is_true(worst < 0.05, "a frame took " .. worst)
    c:close()
  end)

  describe("chains", function()
    it("extend_from a task not finished: held until it succeeds, then sent with its id", function()
      local c = client()
      local a = assert(c:submit{ prompt = "shot one" })
      local b = assert(c:submit{ prompt = "shot two", extend_from = a })
      local d = assert(c:submit{ prompt = "shot three", extend_from = b })
      assert.equal("held", b.phase)
      assert.equal("held", d.phase)
      while a.status == "submitting" do c:poll(0.05) end
      assert.equal(1, sbx.stats().apimart.submits)   -- only the first was sent
      assert.equal("held", b.phase)
      assert.is_true(pixflow.all{ a, b, d })
      assert.equal("extend", d.mode)
      assert.equal(3, sbx.stats().apimart.tasks)      -- the sandbox refuses to extend unfinished tasks
      c:close()
    end)

    it("a failed source gives its chain up: nothing sent, nothing charged", function()
      local c = client()
      local a = assert(c:submit{ prompt = "#fail" })
      local b = assert(c:submit{ prompt = "after", extend_from = a })
      local ok, err = b:wait{ timeout = 10 }
      assert.is_nil(ok)
      assert.equal("canceled", b.status)
      assert.equal("source_failed", err.code)
      assert.matches("nothing was charged", err.message)
      assert.equal(1, sbx.stats().apimart.submits)
      c:close()
    end)

    it("extending a task that already failed is refused at once", function()
      local c = client()
      local a = assert(c:submit{ prompt = "#fail" })
      a:wait{ timeout = 10 }
      local b, err = c:submit{ prompt = "after", extend_from = a }
      assert.is_nil(b)
      assert.matches("the task to extend ended failed", tostring(err))
      c:close()
    end)
  end)

  describe("fallback", function()
    local function fb(on_moderated)
      return pixflow.fallback({
        { provider = "apimart", api_key = "noquota", base_url = sbx.base("apimart"), poll = POLL },
        { provider = "jiekou", api_key = "k", base_url = sbx.base("jiekou"), poll = POLL },
        { provider = "dashscope", api_key = "k", base_url = sbx.base("dashscope"), poll = POLL },
      }, { on_moderated = on_moderated })
    end

    it("a refused submit (quota) moves on; the next gateway makes it", function()
      local f = fb()
      local t = assert(f:submit{ prompt = "@hero walks", references = HERO })
      assert.is_true(t:wait{ timeout = 10 })
      assert.equal("jiekou", t.provider)
      assert.equal(2, #t.attempts)
      assert.equal(0, sbx.stats().apimart.tasks)
      f:close()
    end)

    it("an unconfirmed submit never falls back: the next gateway gets nothing", function()
      sbx.faults{ { gateway = "apimart", route = "submit", action = "reset_after", times = 1 } }
      local f = pixflow.fallback({
        { provider = "apimart", api_key = "k", base_url = sbx.base("apimart"), poll = POLL },
        { provider = "jiekou", api_key = "k", base_url = sbx.base("jiekou"), poll = POLL },
      })
      local t = assert(f:submit{ prompt = "@hero walks", references = HERO })
      local ok, err = t:wait{ timeout = 10 }
      assert.is_nil(ok)
      assert.equal("unconfirmed", err.kind)
      assert.equal(1, #t.attempts)
      assert.equal(1, sbx.stats().apimart.tasks)       -- created, and maybe billed: so it stops
      assert.equal(0, sbx.stats().jiekou.submits)
      sbx.faults{}
      f:close()
    end)

    it("a failed generation moves on; moderation stops unless asked", function()
      local f = fb()
      local t = assert(f:submit{ prompt = "@hero #fail", references = HERO })
      assert.is_nil((t:wait{ timeout = 10 }))
      assert.equal(3, #t.attempts)
      local m = assert(f:submit{ prompt = "@hero #moderate", references = HERO })
      local ok, err = m:wait{ timeout = 10 }
      assert.is_nil(ok)
      assert.equal("moderated", err.kind)
      assert.equal(2, #m.attempts)
      f:close()
      local f2 = fb("next")
      local m2 = assert(f2:submit{ prompt = "@hero #moderate", references = HERO })
      assert.is_nil((m2:wait{ timeout = 10 }))
      assert.equal(3, #m2.attempts)
      f2:close()
    end)

    it("never moves on from a task it cannot see the end of (a wait timeout)", function()
      local f = pixflow.fallback{
        { provider = "apimart", api_key = "k", base_url = sbx.base("apimart"), poll = POLL },
        { provider = "jiekou", api_key = "k", base_url = sbx.base("jiekou"), poll = POLL },
      }
      local t = assert(f:submit{ prompt = "@hero #never", references = HERO })
      local ok, err = t:wait{ timeout = 0.5 }
      assert.is_nil(ok)
      assert.equal("timeout", err.kind)
      assert.equal(1, #t.attempts)
      assert.equal(0, sbx.stats().jiekou.submits)
      f:close()
    end)
  end)

  describe("provider configuration", function()
    it("a new preset on an existing wire protocol", function()
      pixflow.define_provider("myrelay", { based_on = "quickrouter", base_url = sbx.base("quickrouter"),
                                            key_env = "MYRELAY_KEY", models = { ["v5.6"] = "v5.6" } })
      local c = assert(pixflow.new{ provider = "myrelay", api_key = "k", poll = POLL })
      local t = assert(c:submit{ prompt = "@hero x", references = { { name = "hero", image = "spec/fixtures/images/hero.png" } } })
      assert(t:wait{ timeout = 10 })
      assert.equal(1, sbx.stats().quickrouter.tasks)
      c:close()
    end)

    it("misspelt keys are named, with the nearest valid one", function()
      assert.has_error(function()
        pixflow.define_provider("x", { based_on = "quickrouter", base_url = "u", key_env = "K", baseurl = "y" })
      end, "bad argument #2 to 'define_provider' (unknown field 'baseurl'; did you mean 'base_url'?)")
      assert.has_error(function() pixflow.define_provider("x", { adapter = "openai", base_url = "u", key_env = "K" }) end,
        "bad argument #2 to 'define_provider' (adapter: no wire protocol 'openai' (known: apimart, baicai, dashscope, jiekou, pixverse))")
    end)

    it("a config file defines presets and defaults; a broken one names the file and the key", function()
      local dir = util.tmpdir()
      local function cfg(text)
        local f = assert(io.open(dir .. "/config.lua", "w"))
        f:write(text)
        f:close()
      end
      cfg([[return { providers = { relay2 = { based_on = "pixverse", base_url = "https://r2.example.com",
                                              key_env = "R2_KEY" } } }]])
      local status, out = util.run(("PIXFLOW_CONFIG=%s/config.lua R2_KEY=k LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
        .. "LUA_CPATH='build/?.so;;' lua5.4 -e 'local p = require \"pixflow\"; print(p.new{ provider = \"relay2\" }.base_url)'"):format(dir))
      assert.equal(0, status, out)
      assert.equal("https://r2.example.com\n", out)
      cfg("return { provider = {} }")
      status, out = util.run(("PIXFLOW_CONFIG=%s/config.lua bin/pixflow providers"):format(dir))
      assert.is_not.equal(0, status)
      assert.matches("unknown key 'provider'; did you mean 'providers'%?", out)
      os.execute("rm -rf " .. dir)
    end)
  end)
end)
