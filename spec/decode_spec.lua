-- Bounded reply decoding (issue 14): a status reply is capped far below max_body_bytes (it is a
-- few KB on every gateway), so a hostile or broken one cannot make a pump read and parse
-- megabytes; the cap counts bytes after decoding, and the task is simply polled again.
local pixflow = require "pixflow"
local sandbox = require "spec.support.sandbox"

describe("a status reply", function()
  local sbx
  sandbox.around({ task_seconds = 0.3, reset = true }, function(s) sbx = s end)

  it("past 64 KiB (decoded) is cut off, counted as a failed poll, and polled again", function()
    sbx.faults{ { gateway = "apimart", route = "status", action = "huge", size = 1024 * 1024, times = 1 } }
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  poll = { initial = 0.05, interval = 0.05 }, retry = { base = 0.01 } })
    local t = assert(c:submit({ model = "v6", prompt = "p" }))
    assert(t:wait({ timeout = 20 }))
    assert.equal("succeeded", t.status)
    assert.equal("too_large", t.last_retry and t.last_retry.code, t.last_retry and t.last_retry.message)
    assert.matches("larger than 65536 bytes", t.last_retry.message)
    c:close()
  end)

  it("keeps the lower of the cap and max_body_bytes", function()
    sbx.faults{ { gateway = "apimart", route = "status", action = "huge", size = 32 * 1024, times = 1 } }
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  max_body_bytes = 16 * 1024,
                                  poll = { initial = 0.05, interval = 0.05 }, retry = { base = 0.01 } })
    local t = assert(c:submit({ model = "v6", prompt = "p" }))
    assert(t:wait({ timeout = 20 }))
    assert.matches("larger than 16384 bytes", t.last_retry.message)
    c:close()
  end)
end)
