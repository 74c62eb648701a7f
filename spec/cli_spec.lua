-- The pixflow command: --help everywhere, --json events, the journal, list, resume, cancel,
-- exit codes, and Ctrl-C leaving the task to resume.
local cjson = require "cjson"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

describe("the pixflow command", function()
  local sbx, dir, env
  sandbox.around({ task_seconds = 0.6 }, function(s, d)
    sbx, dir = s, d
    env = ("APIMART_API_KEY=k DASHSCOPE_API_KEY=k XDG_STATE_HOME=%s/state"):format(dir)
  end)

  for _, cmd in ipairs({ "generate", "status", "download", "cancel", "list", "resume", "batch", "providers", "sandbox" }) do
    it(cmd .. " --help", function()
      local status, out = util.run("bin/pixflow " .. cmd .. " --help")
      assert.equal(0, status, out)
      assert.matches("usage: pixflow", out)
    end)
  end

  it("help documents the exit codes", function()
    local _, out = util.run("bin/pixflow help")
    assert.matches("exit codes: 0 success, 1 usage, 2 invalid request, 3 auth or quota", out)
  end)

  it("generate --json: one JSON object per event, ending in done; the journal has it", function()
    local status, out = util.run(("%s bin/pixflow generate --sandbox %s --json --prompt '@hero walks' "
      .. "--ref hero=spec/fixtures/images/hero.png -o %s/j.mp4"):format(env, sbx.url, dir))
    assert.equal(0, status, out)
    local events = {}
    for line in out:gmatch("[^\n]+") do events[#events + 1] = cjson.decode(line) end
    assert.equal("submitted", events[1].event)
    assert.equal("done", events[#events].event)
    assert.equal(dir .. "/j.mp4", events[#events].path)
    local seen = {}
    for _, e in ipairs(events) do if e.phase then seen[e.phase] = true end end
    assert.is_true(seen.uploading)
    status, out = util.run(("%s bin/pixflow list --json"):format(env))
    assert.equal(0, status, out)
    local last
    for line in out:gmatch("[^\n]+") do last = cjson.decode(line) end
    assert.equal("downloaded", last.status)
    assert.equal(dir .. "/j.mp4", last.path)
  end)

  it("status and download by id; cancel where the gateway can", function()
    local _, out = util.run(("%s bin/pixflow generate --sandbox %s --json --prompt x -o %s/s.mp4")
      :format(env, sbx.url, dir))
    local id
    for line in out:gmatch("[^\n]+") do id = cjson.decode(line).id or id end
    local status, text = util.run(("%s bin/pixflow status %s --sandbox %s"):format(env, id, sbx.url))
    assert.equal(0, status, text)
    assert.matches("apimart " .. id .. " succeeded", text)
    status, text = util.run(("%s bin/pixflow download %s --sandbox %s -o %s/again.mp4"):format(env, id, sbx.url, dir))
    assert.equal(0, status, text)
    assert.equal("ftyp", util.read(dir .. "/again.mp4"):sub(5, 8))
    status, text = util.run(("%s bin/pixflow cancel %s --sandbox %s"):format(env, id, sbx.url))
    assert.equal(2, status, text)
    assert.matches("apimart has no cancel call", text)
  end)

  it("exit codes: invalid 2, moderated 4, timeout 5", function()
    local status = util.run(("%s bin/pixflow generate --sandbox %s --prompt x --duration 99"):format(env, sbx.url))
    assert.equal(2, status)
    status = util.run(("%s bin/pixflow generate --sandbox %s --prompt '#moderate' -o %s/m.mp4"):format(env, sbx.url, dir))
    assert.equal(4, status)
    status = util.run(("%s bin/pixflow generate --sandbox %s --prompt '#never' --timeout 1 -o %s/n.mp4"):format(env, sbx.url, dir))
    assert.equal(5, status)
  end)

  it("Ctrl-C leaves the task running and in the journal, says how to resume, exits 130; resume finishes it", function()
    local out = dir .. "/ctrlc.mp4"
    local env = ("APIMART_API_KEY=k XDG_STATE_HOME=%s/ctrlc-state"):format(dir)   -- a journal of its own
    local p = assert(io.popen(("%s bin/pixflow generate --sandbox %s --prompt 'slow #seconds=2' -o %s > %s/ctrlc.log 2>&1 & echo $!")
      :format(env, sbx.url, out, dir), "r"))
    local pid = tonumber(p:read("l"))
    p:close()
    -- wait until the task is accepted (its id is in the journal), then interrupt
    local deadline = require("pixflow").now() + 10
    while util.journal_count(dir .. "/ctrlc-state/pixflow/journal.db", "accepted") == 0 do
      assert.is_true(require("pixflow").now() < deadline, "the task was never accepted")
      os.execute("sleep 0.05")
    end
    os.execute(("kill -INT %d; while kill -0 %d 2>/dev/null; do sleep 0.02; done"):format(pid, pid))
    local log = util.read(dir .. "/ctrlc.log")
    assert.matches("interrupted: task task_%w+ keeps running at apimart", log)
    assert.matches("pixflow resume", log)
    local status, text = util.run(("%s bin/pixflow resume --poll 0.2 --timeout 20"):format(env))
    assert.equal(0, status, text)
    assert.equal("ftyp", util.read(out):sub(5, 8))
  end)
end)
