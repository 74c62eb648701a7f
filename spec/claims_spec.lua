-- Claims across processes (issue 12, section 1): a task, a batch item and an output path each
-- have at most one live owner across every process on the machine. Real `pixflow` processes run
-- against the sandbox at the same time, and the sandbox's own counters (/_sandbox/stats) say what
-- the gateways saw: one task per item, one download per task.
local cjson = require "cjson"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local function now() return require("pixflow").now() end

local function sleep(s)
  os.execute(("sleep %.3f"):format(s))
end

-- Start a command in the background; returns its pid.
local function spawn(cmd, log)
  local p = assert(io.popen(("%s > %s 2>&1 & echo $!"):format(cmd, log), "r"))
  local pid = tonumber(p:read("l"))
  p:close()
  return pid
end

-- Wait for a background process; returns its exit status (from the status file it leaves).
local function spawn_status(cmd, log)
  local st = log .. ".status"
  local pid = spawn(("(%s; echo $? > %s)"):format(cmd, st), log)
  return pid, function(timeout)
    local deadline = now() + (timeout or 60)
    while not util.exists(st) do
      assert(now() < deadline, "the process did not end: " .. cmd .. "\n" .. (util.read(log) or ""))
      sleep(0.05)
    end
    sleep(0.05)
    return tonumber(util.read(st))
  end
end

local function until_true(pred, timeout, what)
  local deadline = now() + (timeout or 20)
  while not pred() do
    assert(now() < deadline, "timed out waiting for " .. what)
    sleep(0.02)
  end
end

-- Tasks of the journal under state (an XDG_STATE_HOME) whose gateway id is recorded (the
-- database, or the JSONL journal of an earlier pixflow).
local function accepted(state)
  local db = state .. "/pixflow/journal.db"
  if util.exists(db) then return util.journal_count(db, "accepted") end
  local n = 0
  for _ in (util.read(state .. "/pixflow/journal.jsonl") or ""):gmatch('"ev":"accepted"') do n = n + 1 end
  return n
end

local function kill9(pid)
  os.execute(("kill -9 %d 2>/dev/null; while kill -0 %d 2>/dev/null; do sleep 0.01; done"):format(pid, pid))
end

describe("claims across processes", function()
  local sbx, dir
  sandbox.around({ task_seconds = 1.0, reset = true }, function(s, d) sbx, dir = s, d end)

  it("two batches of one manifest at once: each item is submitted once and downloaded once", function()
    local items = {}
    for i = 1, 6 do
      items[i] = { output = ("shot-%d.mp4"):format(i), provider = "apimart", prompt = ("shot %d #seconds=1.5"):format(i) }
    end
    local mf = assert(io.open(dir .. "/m.json", "w"))
    mf:write(cjson.encode(items))
    mf:close()
    local env = ("APIMART_API_KEY=k XDG_STATE_HOME=%s/state"):format(dir)
    local cmd = ("%s bin/pixflow batch %s/m.json --sandbox %s --poll 0.2 --concurrency 4"):format(env, dir, sbx.url)
    local _, wait1 = spawn_status(cmd, dir .. "/b1.log")
    local _, wait2 = spawn_status(cmd, dir .. "/b2.log")
    local s1, s2 = wait1(60), wait2(60)
    local st = sbx.stats().apimart
    local logs = (util.read(dir .. "/b1.log") or "") .. "\n----\n" .. (util.read(dir .. "/b2.log") or "")
    assert.equal(6, st.tasks, "gateway tasks\n" .. logs)
    assert.equal(6, st.downloads, "downloads\n" .. logs)
    for i = 1, 6 do
      assert.equal("ftyp", (util.read(("%s/shot-%d.mp4"):format(dir, i)) or ""):sub(5, 8))
    end
    -- the run that found items claimed says so (or, started late on a busy machine, found them
    -- done); the first one finished them
    assert.is_truthy(logs:find("another pixflow process %(pid %d+%) is running this item")
                     or logs:find("the file is there", 1, true), logs)
    assert.is_true(s1 == 0 or s2 == 0, logs)
    -- run again: everything is there, nothing is sent
    local status, out = util.run(cmd)
    assert.equal(0, status, out)
    assert.equal(6, sbx.stats().apimart.tasks)
  end)

  it("resume leaves a running generate's task alone, and takes it over once that process is killed", function()
    local env = ("APIMART_API_KEY=k XDG_STATE_HOME=%s/state2"):format(dir)
    local out = dir .. "/gen.mp4"
    local pid, wait = spawn_status(("%s bin/pixflow generate --sandbox %s --prompt 'slow #seconds=3' -o %s")
      :format(env, sbx.url, out), dir .. "/gen.log")
    until_true(function() return sbx.stats().apimart.tasks == 1 end, 10, "the submit")
    sleep(0.3)
    local status, text = util.run(("%s bin/pixflow resume --poll 0.2 --timeout 10"):format(env))
    assert.equal(0, status, text)
    assert.matches("a running pixflow process %(pid %d+%) is following this task", text)
    assert.equal(0, sbx.stats().apimart.downloads, text)
    local gstatus = wait(30)
    assert.equal(0, gstatus, util.read(dir .. "/gen.log"))
    assert.equal(1, sbx.stats().apimart.downloads)
    assert.equal("ftyp", util.read(out):sub(5, 8))
    -- a generate killed with SIGKILL: its claim dies with it, and resume finishes its task
    local out2 = dir .. "/gen2.mp4"
    pid = spawn(("%s bin/pixflow generate --sandbox %s --prompt 'slow #seconds=2' -o %s")
      :format(env, sbx.url, out2), dir .. "/gen2.log")
    until_true(function() return accepted(dir .. "/state2") == 2 end, 10, "the second submit's answer")
    kill9(pid)
    status, text = util.run(("%s bin/pixflow resume --poll 0.2 --timeout 20"):format(env))
    assert.equal(0, status, text)
    assert.equal("ftyp", util.read(out2):sub(5, 8), text)
    local st = sbx.stats().apimart
    assert.equal(2, st.tasks)
    assert.equal(2, st.downloads)
  end)

  it("two tasks writing one output path: the second fails before it is sent, nothing charged", function()
    local pixflow = require "pixflow"
    local path = dir .. "/one.db"
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  journal = path, poll = { initial = 0.05, interval = 0.1 } })
    local a = assert(c:submit({ prompt = "first #seconds=1" }, { output = dir .. "/same.mp4" }))
    -- the intent's transaction on the worker refuses it: the task fails in a pump, unsent
    local b = assert(c:submit({ prompt = "second" }, { output = dir .. "/./same.mp4" }))
    local ok, err = b:wait{ timeout = 10 }
    assert.is_nil(ok)
    assert.equal("failed", b.status)
    assert.is_false(err.charged)
    assert.equal("invalid", err.kind)
    assert.equal("output_taken", err.code)
    assert.matches("already the output of task", err.message, 1, true)
    -- another process, the same output: refused too (exit 2), and nothing reaches the gateway.
    -- a's claim is its intent, which the worker writes before a is sent: once a has an id it is
    -- in the journal (under helgrind the other process could otherwise look before it is)
    while not a.id do c:poll(0.05) end
    local env = ("APIMART_API_KEY=k XDG_STATE_HOME=%s/state3"):format(dir)
    local status, text = util.run(("%s bin/pixflow generate --journal %s --sandbox %s --prompt third -o %s/same.mp4")
      :format(env, path, sbx.url, dir))
    assert.equal(2, status, text)
    assert.matches("output .*same.mp4 is already the output of task", text)
    assert(a:download(dir .. "/same.mp4", { timeout = 20 }))
    assert.equal(1, sbx.stats().apimart.submits)
    -- once the first one is downloaded, the path is free again
    local again = assert(c:submit({ prompt = "again" }, { output = dir .. "/same.mp4" }))
    assert(again:download(dir .. "/same.mp4", { timeout = 20 }))
    c:close()
  end)

  it("output paths are stored absolute: two interrupted generates in two directories, resumed from a third", function()
    local env = ("APIMART_API_KEY=k XDG_STATE_HOME=%s/state4"):format(dir)
    local root = util.abspath(".")
    for _, d in ipairs({ "d1", "d2", "d3" }) do os.execute("mkdir -p " .. dir .. "/" .. d) end
    local pids = {}
    for i, d in ipairs({ "d1", "d2" }) do
      pids[i] = spawn(("cd %s/%s && %s %s/bin/pixflow generate --sandbox %s --prompt 'slow %d #seconds=2' -o out.mp4")
        :format(dir, d, env, root, sbx.url, i), dir .. "/" .. d .. ".log")
    end
    until_true(function() return accepted(dir .. "/state4") == 2 end, 10, "both submits' answers")
    for _, pid in ipairs(pids) do kill9(pid) end
    local status, text = util.run(("cd %s/d3 && %s %s/bin/pixflow resume --poll 0.2 --timeout 20"):format(dir, env, root))
    assert.equal(0, status, text)
    assert.equal("ftyp", (util.read(dir .. "/d1/out.mp4") or ""):sub(5, 8), text)
    assert.equal("ftyp", (util.read(dir .. "/d2/out.mp4") or ""):sub(5, 8), text)
    assert.is_false(util.exists(dir .. "/d3/out.mp4"))
    assert.equal(2, sbx.stats().apimart.downloads)
  end)
end)
