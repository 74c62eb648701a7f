-- Client options: one table (lua/pixflow/defaults.lua) holds every default and range; pixflow.new
-- checks the user's values there by the names the user writes and blames the caller's line; the
-- core takes complete values and has no defaults of its own.
local pixflow = require "pixflow"
local core = require "pixflow.core"
local defaults = require "pixflow.defaults"
local sandbox = require "spec.support.sandbox"

local THIS = debug.getinfo(1, "S").short_src

-- pixflow.new's error, and the line of the call that made it (the closure's, one line)
local function new_error(opts)
  local line
  local ok, err = pcall(function() line = debug.getinfo(1, "l").currentline; local c = pixflow.new(opts) return c end)
  assert.is_false(ok, "pixflow.new accepted it")
  return tostring(err), line
end

local function base(extra)
  local opts = { provider = "apimart", api_key = "k", base_url = "http://127.0.0.1:9/apimart" }
  for k, v in pairs(extra) do opts[k] = v end
  return opts
end

describe("client options", function()
  it("a value out of range is named the way the user wrote it, and blamed on the caller's line", function()
    local msg, line = new_error(base{ poll = { backoff = 20 } })
    assert.matches("field 'poll.backoff' must be from 1 to 10, got 20", msg, 1, true)
    assert.is_nil(msg:find("poll_backoff", 1, true), msg)
    assert.equal(("%s:%d:"):format(THIS, line), msg:match("^[^:]+:%d+:"))
  end)

  for _, case in ipairs{
    { { timeouts = { connect = 0 } }, "field 'timeouts.connect' must be from 0.001 to 3600, got 0" },
    { { retry = { poll_failures = 2.5 } }, "field 'retry.poll_failures' must be a whole number from 1 to 1000, got 2.5" },
    { { poll = { max_failures = 0 } }, "field 'poll.max_failures' must be a whole number from 1 to 1000, got 0" },
    { { max_per_host = 0 }, "field 'max_per_host' must be a whole number from 1 to 1024, got 0" },
    { { retry = { after_max = -1 } }, "field 'retry.after_max' must be from 0 to 86400, got -1" },
    { { task_timeout = 1e9 }, "field 'task_timeout' must be from 0 to 2592000, got 1000000000" },
    { { task_timeout = { v6 = 1e9 } }, "field 'task_timeout.v6' must be from 0 to 2592000, got 1000000000" },
    { { poll = { jitter = 2 } }, "field 'poll.jitter' must be from 0 to 1, got 2" },
  } do
    it("names " .. case[2]:match("'(.-)'"), function()
      local msg, line = new_error(base(case[1]))
      assert.matches(case[2], msg, 1, true)
      assert.equal(("%s:%d:"):format(THIS, line), msg:match("^[^:]+:%d+:"))
    end)
  end

  it("a preset's own bad value is named as the preset's", function()
    pixflow.define_provider("badpoll", { based_on = "apimart", base_url = "http://127.0.0.1:9/x",
                                         key_env = "BADPOLL_KEY", poll = { interval = -1 } })
    local msg = new_error{ provider = "badpoll", api_key = "k" }
    assert.matches("provider 'badpoll''s preset value poll.interval must be from 0.001 to 86400, got -1", msg, 1, true)
  end)

  it("every option the core runs with is defaults.lua's (or the preset's) where the user gives none", function()
    for _, p in ipairs{ "apimart", "pixverse", "quickrouter", "dashscope", "jiekou", "baicai" } do
      local c = assert(pixflow.new{ provider = p, api_key = "k" })
      local got = c._core:_options()
      local preset = require("pixflow.providers").preset(p)
      for _, o in ipairs(defaults.OPTIONS) do
        local want = o.default
        for _, f in ipairs(o.field) do
          local v = preset
          for k in f:gmatch("[^.]+") do v = type(v) == "table" and v[k] or nil end
          if v ~= nil then want = v break end
        end
        if o.core == "poll_min" then want = math.min(want, got.poll_interval) end
        assert.equal(want, got[o.core], p .. " " .. o.core)
      end
      assert.equal("pixflow/" .. core._VERSION, got.user_agent)
      c:close()
    end
  end)

  it("the user's values reach the core, by every name they can be given", function()
    local c = assert(pixflow.new(base{ poll = { initial = 1, interval = 2, max = 3, backoff = 2, jitter = 0,
                                                min = 0.5, rate = 4, adaptive = false, max_failures = 9 },
                                       timeouts = { connect = 1, request = 2, download = 3, low_speed_bytes = 4,
                                                    low_speed_time = 5 },
                                       retry = { base = 0.5, max = 6, after_max = 7, submit_attempts = 2,
                                                 upload_attempts = 3, download_attempts = 4, lookup_delay = 1,
                                                 lookup_attempts = 5 },
                                       max_per_host = 3, max_body_bytes = 4096, max_download_bytes = 1e6,
                                       task_timeout = { default = 99, v5 = 7 }, user_agent = "me/1" }))
    local o = c._core:_options()
    assert.same({ 1, 2, 3, 2, 0, 0.5, 4, false, 9 }, { o.poll_initial, o.poll_interval, o.poll_max, o.poll_backoff,
      o.poll_jitter, o.poll_min, o.poll_rate, o.poll_adaptive, o.max_poll_failures })
    assert.same({ 1, 2, 3, 4, 5 }, { o.connect_timeout, o.request_timeout, o.download_timeout, o.low_speed_bytes,
      o.low_speed_time })
    assert.same({ 0.5, 6, 7, 2, 3, 4, 1, 5 }, { o.retry_base, o.retry_max, o.retry_after_max, o.submit_attempts,
      o.upload_attempts, o.download_attempts, o.lookup_delay, o.lookup_attempts })
    assert.same({ 3, 4096, 1000000, 99, "me/1" }, { o.max_per_host, o.max_body_bytes, o.max_download_bytes,
      o.task_timeout, o.user_agent })
    assert.equal(99, c.task_timeout)
    assert.equal(7, c:_timeout_for("v5"))
    c:close()
    -- retry.poll_failures wins over poll.max_failures, download_attempts over retry's
    c = assert(pixflow.new(base{ poll = { max_failures = 9 }, retry = { poll_failures = 3, download_attempts = 2 },
                                 download_attempts = 6 }))
    assert.equal(3, c._core:_options().max_poll_failures)
    assert.equal(6, c._core:_options().download_attempts)
    c:close()
  end)

  describe("a preset that gives only part of its poll cadence", function()
    local sbx
    sandbox.around({ task_seconds = 60, reset = true }, function(s) sbx = s end)

    it("gets the rest from defaults.lua (the first poll after poll.initial, 5 s, not the core's old 2 s)", function()
      pixflow.define_provider("partial", { based_on = "apimart", base_url = sbx.base("apimart"),
                                           key_env = "PARTIAL_KEY", poll = { interval = 3, jitter = 0 } })
      local c = assert(pixflow.new{ provider = "partial", api_key = "k" })
      local t = assert(c:submit{ prompt = "x" })
      local deadline = core.now() + 10
      while t.status == "submitting" do
        assert(core.now() < deadline)
        c:poll(0.05)
      end
      local due = c._core:_next_due()
      assert.is_true(due > 4.5 and due <= 5, "first poll in " .. tostring(due))
      c:close()
    end)
  end)

  describe("the core", function()
    local function complete()
      local co = defaults.resolve({}, {}, 1)
      co.provider, co.adapter, co.base_url, co.api_key = "apimart", "apimart", "http://127.0.0.1:9", "k"
      co.auth, co.ref_names, co.user_agent = "bearer", true, "t/1"
      return co
    end

    it("has no defaults: an option left out is refused, by its name", function()
      local c = assert(core.new_client(complete()))
      c:close()
      for _, o in ipairs(defaults.OPTIONS) do
        local co = complete()
        co[o.core] = nil
        local ok, err = pcall(core.new_client, co)
        assert.is_false(ok, o.core .. " was not required")
        assert.matches("option '" .. o.core .. "'", err, 1, true)
      end
    end)

    it("takes every value in every range of defaults.lua (its own checks are only wider)", function()
      for _, o in ipairs(defaults.OPTIONS) do
        if not o.boolean then
          for _, v in ipairs{ o.min, o.max } do
            local co = complete()
            co[o.core] = v
            local c = core.new_client(co)
            assert.is_not_nil(c, o.core .. " = " .. v)
            c:close()
          end
        end
      end
    end)
  end)

  describe("poll.interval and poll.max", function()
    local function opts_of(poll)
      local c = assert(pixflow.new(base{ poll = poll }))
      local o = c._core:_options()
      c:close()
      return o
    end

    it("an interval above poll.max, both the user's, is refused: poll.max bounds every wait", function()
      local msg, line = new_error(base{ poll = { interval = 60, max = 30 } })
      assert.matches("field 'poll.interval' (60) must not exceed field 'poll.max' (30)", msg, 1, true)
      assert.equal(("%s:%d:"):format(THIS, line), msg:match("^[^:]+:%d+:"))
    end)

    it("the user's poll.max brings a preset's (or the default) interval and first poll down to it", function()
      local o = opts_of{ max = 3 }
      assert.same({ 3, 3, 3 }, { o.poll_interval, o.poll_max, o.poll_initial })
      local o2 = opts_of{ max = 3, initial = 10 }                    -- the user's own first poll stays
      assert.equal(10, o2.poll_initial)
    end)

    it("the user's interval raises a preset's (or the default) poll.max to it", function()
      local o = opts_of{ interval = 60 }
      assert.same({ 60, 60 }, { o.poll_interval, o.poll_max })
      local o2 = opts_of{ interval = 2, max = 3 }
      assert.same({ 2, 3, 3 }, { o2.poll_interval, o2.poll_max, o2.poll_initial })
    end)
  end)
end)
