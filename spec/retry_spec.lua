-- The retry and deadline policy (csrc/retry.c), on its own and driven through hours of virtual
-- time by the injectable clock (clock = "manual": only _advance_clock moves it).
local pixflow = require "pixflow"
local core = require "pixflow.core"
local socket = require "socket"
local sandbox = require "spec.support.sandbox"

describe("retry policy", function()
  it("full jitter: uniform under an exponential ceiling, capped", function()
    local delay = core._retry_delay
    assert.equal(0, delay(1, 60, 300, 1, -1, 0))
    assert.near(0.5, delay(1, 60, 300, 1, -1, 0.5), 1e-9)        -- ceiling 1
    assert.near(4, delay(1, 60, 300, 4, -1, 0.5), 1e-9)          -- ceiling 8
    assert.near(30, delay(1, 60, 300, 30, -1, 0.5), 1e-9)        -- capped at 60
    assert.near(30, delay(1, 60, 300, 5000, -1, 0.5), 1e-9)      -- no overflow
    assert.is_true(delay(1, 60, 300, 3, -1, 0.999999) < 4)
  end)

  it("Retry-After replaces the back-off, up to its cap", function()
    assert.equal(7, core._retry_delay(1, 60, 300, 1, 7, 0.5))
    assert.equal(300, core._retry_delay(1, 60, 300, 1, 86400, 0.5))
    assert.equal(0, core._retry_delay(1, 60, 300, 9, 0, 0.5))
  end)
end)

describe("retries in virtual time", function()
  local sbx
  sandbox.around({ task_seconds = 0.1, reset = true }, function(s) sbx = s end)

  local function manual_client(extra)
    local opts = { provider = "apimart", api_key = "sk-virtual", base_url = sbx.base("apimart"),
                   clock = "manual", poll = { initial = 0, interval = 1, max = 1, jitter = 0 } }
    for k, v in pairs(extra) do opts[k] = v end
    return assert(pixflow.new(opts))
  end

  -- Pump until the task is done, jumping the clock to each due time; returns the virtual
  -- seconds spent.
  local function drive(c, t)
    local virtual = 0
    for _ = 1, 10000 do
      -- until the engine is idle: a reply still coming, a job on the worker or work a pump left
      -- at its budget (under AddressSanitizer, often) is not a reason to move the clock
      repeat c:poll(0.02) local r, q, _, j, left = c._core:_transfers()
      until (r == 0 and q == 0 and j == 0 and not left) or t.done or t.halted
      if t.done or t.halted then return virtual end
      local due = c._core:_next_due()
      if due and due > 0 then
        c._core:_advance_clock(due)
        virtual = virtual + due
      end
    end
    error("the task never ended")
  end

  it("ten failed status polls back off through hours, then the task finishes", function()
    sbx.faults{ { gateway = "apimart", route = "status", action = "reply", status = 503, body = "", times = 10 } }
    local c = manual_client{ retry = { base = 60, max = 3600, poll_failures = 20 }, task_timeout = 86400 }
    local t = assert(c:submit{ prompt = "x" })
    local t0 = socket.gettime()
    local virtual = drive(c, t)
    assert.equal("succeeded", t.status)
    assert.equal(10, t.retries)
    assert.equal(503, t.last_retry.status)
    -- full jitter: somewhere between nothing and the sum of the ceilings (60 .. 3600 s)
    assert.is_true(virtual > 60 and virtual < 60 + 120 + 240 + 480 + 960 + 1920 + 3600 * 4 + 10,
                   "virtual time " .. virtual)
    assert.is_true(socket.gettime() - t0 < 5, "real time should be short")
    assert.equal(11, sbx.stats().apimart.polls)
    c:close()
  end)

  it("a Retry-After of two hours is honoured up to retry.after_max", function()
    sbx.faults{ { gateway = "apimart", route = "status", action = "reply", status = 429,
                  retry_after = 7200, body = "", times = 2 } }
    local c = manual_client{ retry = { after_max = 3600 }, task_timeout = 86400 }
    local t = assert(c:submit{ prompt = "x" })
    local virtual = drive(c, t)
    assert.equal("succeeded", t.status)
    -- two Retry-Afters capped at 3600 s (uncapped they would be 14400 s), plus the polls
    assert.is_true(virtual >= 7200 and virtual < 7200 + 600, "virtual time " .. virtual)
    c:close()
  end)

  it("Retry-After: 999999999 is reported as the wait pixflow applies, retry.after_max", function()
    sbx.faults{ { gateway = "apimart", route = "status", action = "reply", status = 429,
                  retry_after = 999999999, body = "", times = 1 } }
    local c = manual_client{ task_timeout = 86400 }
    local t = assert(c:submit{ prompt = "x" })
    local virtual = drive(c, t)
    assert.equal("succeeded", t.status)
    assert.equal(300, t.last_retry.retry_after)       -- the default cap, not the server's number
    assert.matches("asked to wait 999999999 s; pixflow waits at most retry.after_max, 300 s",
                   t.last_retry.message, 1, true)
    assert.is_true(virtual >= 300 and virtual < 400, "virtual time " .. virtual)
    c:close()
  end)

  it("a final error carries the capped wait too", function()
    sbx.faults{ { gateway = "apimart", route = "submit", action = "reply", status = 429,
                  retry_after = 999999999, body = "" } }
    local c = manual_client{ retry = { submit_attempts = 1, after_max = 60 } }
    local t = assert(c:submit{ prompt = "x" })
    drive(c, t)
    assert.equal("failed", t.status)
    assert.equal(60, t.error.retry_after)
    assert.matches("pixflow waits at most retry.after_max, 60 s", tostring(t.error), 1, true)
    c:close()
  end)

  it("the task deadline ends an endless back-off, by name, and says it may still be billed", function()
    sbx.faults{ { gateway = "apimart", route = "status", action = "reply", status = 503, body = "" } }
    local c = manual_client{ retry = { base = 60, max = 600, poll_failures = 1000 }, task_timeout = 4 * 3600 }
    local t = assert(c:submit{ prompt = "x" })
    local virtual = drive(c, t)
    assert.is_true(t.halted)
    assert.equal("task_timeout", t.error.code)
    assert.equal("timeout", t.error.kind)
    assert.matches("task_timeout %(14400 s%)", t.error.message)
    assert.matches("may still finish at apimart and be billed", t.error.message)
    assert.near(4 * 3600, virtual, 1)
    c:close()
  end)

  it("task_timeout per model: a table by model name, with a default", function()
    local c = manual_client{ task_timeout = { default = 100, ["v5"] = 7 } }
    assert.equal(7, c:_timeout_for("v5"))
    assert.equal(100, c:_timeout_for("v4.5"))
    c:close()
    assert.has_error(function() manual_client{ task_timeout = { v5 = "soon" } } end)
  end)
end)
