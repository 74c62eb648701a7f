-- Reconciliation that never guesses (issue 12, section 2): an unconfirmed submit is settled from
-- DashScope's task list only when the list was read to its end, within the documented 24-hour
-- window, by the one matcher the live client uses too; a process killed while uploading sent
-- nothing, and its item can run again.
local cjson = require "cjson"
local pixflow = require "pixflow"
local core = require "pixflow.core"
local journal = require "pixflow.journal"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local MODEL = "pixverse/pixverse-c1-r2v"      -- DashScope's name for c1
local HERO = { { name = "hero", image = "https://e.com/h.png" } }

local function seed(sbx, count, created, spacing)
  local code, body = sandbox.request("POST", sbx.url .. "/_sandbox/tasks", cjson.encode{
    gateway = "dashscope", key = "k", model = MODEL, count = count, created = created, spacing = spacing or 0 })
  assert(code == 200, body)
end

-- An intent recorded at time t whose answer never came (the process died).
local function lost_intent(path, key, t, output, base)
  local j = assert(journal.open(path))
  assert(j:record("intent", key, { t = t, provider = "dashscope", base_url = base, model = "c1",
    request = { prompt = "@hero " .. key, references = HERO, mode = "fusion", model = "c1", unified_model = "c1" },
    output = output }))
  j:close()
end

describe("reconciliation through DashScope's task list", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.3, reset = true }, function(s, d) sbx, dir = s, d end)

  it("reads the list to its end: with 4,000 earlier tasks in the window the lost submit is found, not paid twice", function()
    local now = core.time()
    seed(sbx, 4000, now - 3600, 0.5)             -- an hour of earlier tasks, 20 minutes' worth of pages
    local path, out = dir .. "/long.db", dir .. "/lost.mp4"
    lost_intent(path, "lost", now - 20, out, sbx.base("dashscope"))
    -- its submit did reach the gateway: the task exists, its answer was lost
    local bare = assert(pixflow.new{ provider = "dashscope", api_key = "k", base_url = sbx.base("dashscope"),
                                     poll = { initial = 0.05, interval = 0.1 } })
    local t = assert(bare:submit{ prompt = "@hero lost", references = HERO })
    while not t.id do bare:poll(0.05) end
    bare:close()
    local before = sbx.stats().dashscope.tasks
    assert.equal(4001, before)
    local summary = assert(pixflow.batch({ { output = out, provider = "dashscope", prompt = "@hero lost", references = HERO } },
      { journal = path, keys = { dashscope = "k" }, base_urls = { dashscope = sbx.base("dashscope") },
        poll = { initial = 0.05, interval = 0.1 }, timeout = 30 }))
    local st = sbx.stats().dashscope
    assert.equal(4001, st.tasks, "the batch submitted the item again: a second charge")
    assert.equal("downloaded", summary[1].status, tostring(summary[1].error or summary[1].action))
    assert.equal(t.id, summary[1].id)
    assert.is_true(st.lists >= 41, "list pages read: " .. st.lists)
  end)

  it("a list that cannot be read to its end decides nothing", function()
    local now = core.time()
    local path = dir .. "/cut.db"
    lost_intent(path, "cut", now - 30, dir .. "/cut.mp4", sbx.base("dashscope"))
    -- page 2 of the list answers without any paging fields: whether more follow is unknown
    seed(sbx, 150, now - 600, 1)
    sbx.faults{ { gateway = "dashscope", route = "list", action = "reply_after", status = 200, skip = 1,
                  body = '{"request_id":"r","data":[]}' } }
    local report = assert(pixflow.resume{ journal = path, keys = { dashscope = "k" }, timeout = 5 })
    assert.equal("unconfirmed", report.tasks[1].status)
    assert.matches("could not be read to its end", report.tasks[1].action)
    assert.equal(150, sbx.stats().dashscope.tasks)
  end)

  it("asks for at most 24 hours at a time, and settles a submit from seven hours ago", function()
    local now = core.time()
    local path = dir .. "/old.db"
    -- a submit seven hours ago that never reached the gateway, then a later one that did
    lost_intent(path, "old", now - 7 * 3600, dir .. "/old.mp4", sbx.base("dashscope"))
    local report = assert(pixflow.resume{ journal = path, keys = { dashscope = "k" }, timeout = 5 })
    local st = sbx.stats().dashscope
    assert.equal(0, st.list_rejected, "a query over 24 hours was sent")
    assert.is_true(st.lists >= 2, "the window needs two queries: " .. st.lists)
    assert.equal("not_created", report.tasks[1].status)
    assert.matches("never created", report.tasks[1].action)
  end)

  it("one matcher: a task the gateway stamped a second before the intent's own time is still its task", function()
    local now = core.time()
    local path = dir .. "/skew.db"
    lost_intent(path, "skew", now - 30, dir .. "/skew.mp4", sbx.base("dashscope"))
    seed(sbx, 1, now - 31)                       -- the gateway's clock a second behind ours
    local report = assert(pixflow.resume{ journal = path, keys = { dashscope = "k" }, timeout = 10,
                                          poll = { initial = 0.05, interval = 0.1 } })
    assert.equal("downloaded", report.tasks[1].status, tostring(report.tasks[1].action))
    -- the rule resume used is the engine's own
    local verdict = core.match_unconfirmed({ { id = "a", created = 99 } }, { from = 100, to = 200, skew = 2,
      complete = true, closed = true }, {})
    assert.equal("found", verdict)
    assert.equal("ambiguous", (core.match_unconfirmed({ { id = "a", created = 99 } }, { from = 100, to = 200,
      skew = 2, complete = false, closed = true }, {})))
    assert.equal("none", (core.match_unconfirmed({ { id = "a", created = 50 } }, { from = 100, to = 200,
      skew = 2, complete = true, closed = true, clock = { lo = -0.5, hi = 1 } }, {})))
    -- a gateway clock nobody measured decides no "none"; one measured 10 s behind moves the window
    assert.equal("ambiguous", (core.match_unconfirmed({ { id = "a", created = 50 } }, { from = 100, to = 200,
      skew = 2, complete = true, closed = true }, {})))
    assert.equal("found", (core.match_unconfirmed({ { id = "a", created = 91 } }, { from = 100, to = 200,
      skew = 2, complete = true, closed = true, clock = { lo = -10.5, hi = -9 } }, {})))
    assert.equal("ambiguous", (core.match_unconfirmed({ { id = "a", created = -1 } }, { from = 100, to = 200,
      skew = 2, complete = true, closed = true, rivals = { { from = 150, to = 300 } } }, {})))
  end)
end)

describe("a process killed while uploading", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.3, reset = true }, function(s, d) sbx, dir = s, d end)

  it("is recorded as not sent, nothing charged, and its batch item runs again", function()
    local img = dir .. "/hero.png"
    local f = assert(io.open(img, "wb"))
    f:write("\137PNG\r\n\26\n" .. ("\0"):rep(64))
    f:close()
    local items = { { output = "shot.mp4", provider = "apimart", prompt = "@hero runs",
                      references = { { name = "hero", image = "hero.png" } } } }
    local mf = assert(io.open(dir .. "/m.json", "w"))
    mf:write(cjson.encode(items))
    mf:close()
    -- every upload stalls: the batch is killed while it waits for one
    sbx.faults{ { gateway = "apimart", route = "upload", action = "stall", fraction = 0, seconds = 4 } }
    local env = ("APIMART_API_KEY=k XDG_STATE_HOME=%s/state"):format(dir)
    local cmd = ("%s bin/pixflow batch %s/m.json --sandbox %s --poll 0.2"):format(env, dir, sbx.url)
    local p = assert(io.popen(("%s > %s/b.log 2>&1 & echo $!"):format(cmd, dir), "r"))
    local pid = tonumber(p:read("l"))
    p:close()
    local deadline = pixflow.now() + 10
    while sbx.stats().apimart.faults == 0 do     -- the stalled upload has reached the gateway
      assert.is_true(pixflow.now() < deadline, "the upload never started")
      os.execute("sleep 0.05")
    end
    os.execute("sleep 0.3")
    os.execute(("kill -9 %d; while kill -0 %d 2>/dev/null; do sleep 0.01; done"):format(pid, pid))
    assert.equal(0, sbx.stats().apimart.submits)
    local status, text = util.run(("%s bin/pixflow resume --poll 0.2 --timeout 5"):format(env))
    assert.equal(0, status, text)
    assert.matches("nothing was charged", text)
    assert.is_nil(text:find("may exist and be billed", 1, true))
    -- the item runs again: one submit, one download
    sbx.faults{}
    status, text = util.run(cmd)
    assert.equal(0, status, text)
    assert.equal("ftyp", (util.read(dir .. "/shot.mp4") or ""):sub(5, 8), text)
    assert.equal(1, sbx.stats().apimart.submits)
    assert.equal(1, sbx.stats().apimart.downloads)
  end)
end)
