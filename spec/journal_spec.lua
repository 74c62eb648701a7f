-- The journal: what it records and when, that it never holds a key, that a damaged line is
-- skipped, and that resume re-attaches to what a dead process left without submitting again.
local pixflow = require "pixflow"
local journal = require "pixflow.journal"
local cjson = require "cjson"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local KEY = "sk-journal-SECRET-42"
local sbx, dir

-- Every record of the journal at path, oldest first (its history, as the old JSONL lines).
local function lines(path)
  local j = assert(journal.open(path))
  local out = assert(j:events())
  j:close()
  return out
end

-- Every file pixflow wrote for the journal at path (the database, its WAL, its lock files).
local function journal_bytes(path)
  local p = io.popen(("cat '%s'* 2>/dev/null"):format(path))
  local s = p:read("a")
  p:close()
  return s
end

-- Run a Lua script in its own process (with the key in its environment), arguments in arg[].
local function lua(script, ...)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(script)
  f:close()
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = ("'%s'"):format(a) end
  local status, out = util.run(("APIMART_API_KEY=%s LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
    .. "LUA_CPATH='build/?.so;;' lua5.4 %s %s"):format(KEY, file, table.concat(args, " ")))
  os.remove(file)
  return status, out
end

describe("journal", function()
  sandbox.around({ task_seconds = 0.4, reset = true }, function(s, d) sbx, dir = s, d end)

  it("records intent, acceptance, the end and the file, in that order, without the key", function()
    local path = dir .. "/a/b/journal.db"          -- directories are made
    local c = assert(pixflow.new{ provider = "apimart", api_key = KEY, base_url = sbx.base("apimart"),
                                  journal = path, poll = { initial = 0.05, interval = 0.1 } })
    local t = assert(c:submit({ prompt = "@hero x", references = { { name = "hero", image = "https://e.com/h.png" } } },
                              { output = dir .. "/j.mp4", label = "shot 1" }))
    -- submit returns at once: the engine's worker writes the intent, and nothing is sent before
    assert.equal(0, sbx.stats().apimart.submits)
    local until_t = os.time() + 10
    while t.status == "submitting" and os.time() <= until_t do c:poll(0.01) end
    local recs = lines(path)
    assert.equal("intent", recs[1].ev)              -- on disk before the submit left
    assert(t:download(dir .. "/j.mp4", { timeout = 10 }))
    recs = lines(path)
    local evs = {}
    for i, r in ipairs(recs) do evs[i] = r.ev end
    assert.same({ "intent", "accepted", "status", "download", "downloaded" }, evs)
    assert.equal(t.id, recs[2].id)
    assert.equal("succeeded", recs[3].status)
    assert.equal(dir .. "/j.mp4", recs[5].path)
    for _, r in ipairs(recs) do assert.equal(recs[1].key, r.key) end
    assert.equal("apimart", recs[1].provider)
    assert.equal(sbx.base("apimart"), recs[1].base_url)
    assert.equal("shot 1", recs[1].label)
    assert.equal(dir .. "/j.mp4", recs[1].output)   -- stored absolute
    assert.is_nil(journal_bytes(path):find(KEY, 1, true))
    c:close()
  end)

  it("a failure is recorded with its error", function()
    local path = dir .. "/fail.db"
    local c = assert(pixflow.new{ provider = "apimart", api_key = KEY, base_url = sbx.base("apimart"),
                                  journal = path, poll = { initial = 0.05, interval = 0.1 } })
    local t = assert(c:submit{ prompt = "#moderate" })
    t:wait{ timeout = 10 }
    local recs = lines(path)
    assert.equal("moderated", recs[3].status)
    assert.equal("moderated", recs[3].error.kind)
    c:close()
  end)

  it("skips a damaged line with a warning", function()
    local path = dir .. "/damaged.jsonl"
    local f = assert(io.open(path, "w"))
    f:write('{"v":1,"ev":"intent","key":"k1","provider":"apimart","base_url":"http://x","t":1}\n')
    f:write('{"v":1,"ev":"accepted","key":"k1","id":"task_1"}\n')
    f:write('{"v":1,"ev":"accep')                   -- the process died mid-write
    f:close()
    local tasks, warnings = journal.read(path)
    assert.equal(1, #tasks)
    assert.equal("task_1", tasks[1].id)
    assert.equal("open", tasks[1].state)
    assert.equal(1, #warnings)
    -- the last line has no newline: an earlier pixflow may still be writing it, so it waits
    assert.matches("damaged.jsonl:3 is incomplete", warnings[1])
  end)

  it("drops fields of the wrong type (a hand edit, a foreign writer) and reconciles the rest", function()
    -- inputs the journal fuzz target found or would find (fuzz/journal_fuzz.c)
    local path = dir .. "/edited.jsonl"
    local f = assert(io.open(path, "w"))
    f:write('{"v":1,"ev":"intent","key":"k1","provider":{},"t":1}\n')
    f:write('{"v":1,"ev":"intent","key":"k2","provider":"dashscope","t":nan}\n')
    f:write('{"v":1,"ev":"status","key":"k2","status":"unconfirmed"}\n')
    f:write('{"v":1,"ev":"intent","key":"k3","provider":"dashscope","t":"soon","request":7}\n')
    f:write('{"v":1,"ev":"accepted","key":"k3","id":42}\n')
    f:close()
    local tasks, warnings = journal.read(path)
    assert.equal(3, #tasks)
    assert.is_nil(tasks[1].provider)
    assert.is_nil(tasks[2].t)
    assert.is_nil(tasks[3].id)
    assert.equal(5, #warnings)
    assert.matches("edited.jsonl:1: field provider is a table, not a string; ignored", warnings[1], 1, true)
    assert.equal(0, journal.reconcile(path, tasks, function() return nil end))
  end)

  it("resume re-attaches to what a dead process left, and downloads it, without submitting again", function()
    local path, out = dir .. "/crash.jsonl", dir .. "/crash.mp4"
    local status = lua([[
      local pixflow = require "pixflow"
      local c = assert(pixflow.new{ provider = "apimart", base_url = arg[1], journal = arg[2],
                                    poll = { initial = 0.05, interval = 0.1 } })
      local t = assert(c:submit({ prompt = "slow #seconds=1" }, { output = arg[3] }))
      while not t.id do c:poll(0.05) end
      os.exit(3, false)                               -- dies before the task ends
    ]], sbx.base("apimart"), path, out)
    assert.equal(3, status)
    assert.is_false(util.exists(out))
    local events = {}
    local report = assert(pixflow.resume{ journal = path, keys = { apimart = KEY },
      poll = { initial = 0.05, interval = 0.1 }, on_event = function(e) events[#events + 1] = e.event end })
    assert.equal(1, #report.tasks)
    assert.equal("downloaded", report.tasks[1].status)
    assert.equal(out, report.tasks[1].path)
    assert.equal("ftyp", util.read(out):sub(5, 8))
    assert.same({ "attached", "finished" }, events)
    local st = sbx.stats().apimart
    assert.equal(1, st.submits)
    assert.equal(1, st.downloads)
    -- resuming again finds nothing to do
    report = assert(pixflow.resume{ journal = path, keys = { apimart = KEY } })
    assert.equal("done", report.tasks[1].state)
    assert.equal(1, sbx.stats().apimart.downloads)
  end)

  it("an intent without an answer is unconfirmed, with what to do, and is never resubmitted", function()
    local path = dir .. "/unconfirmed.jsonl"
    local f = assert(io.open(path, "w"))
    f:write(cjson.encode{ v = 1, ev = "intent", key = "k9", provider = "apimart", base_url = sbx.base("apimart"),
                          model = "v6", request = { prompt = "x" }, t = 1795000000 }, "\n")
    f:close()
    local report = assert(pixflow.resume{ journal = path, keys = { apimart = KEY } })
    assert.equal("unconfirmed", report.tasks[1].status)
    assert.matches("may exist and be billed", report.tasks[1].action)
    assert.matches("task list", report.tasks[1].action)
    assert.equal(0, sbx.stats().apimart.submits)
  end)

  it("client:resume uses the client itself for its own gateway", function()
    local path = dir .. "/own.jsonl"
    local c = assert(pixflow.new{ provider = "apimart", api_key = KEY, base_url = sbx.base("apimart"),
                                  journal = path, poll = { initial = 0.05, interval = 0.1 } })
    local t = assert(c:submit({ prompt = "x" }, { output = dir .. "/own.mp4" }))
    while not t.id do c:poll(0.05) end
    local report = assert(c:resume{ timeout = 10 })
    assert.equal("downloaded", report.tasks[1].status)
    assert.equal(1, sbx.stats().apimart.submits)
    c:close()
  end)

  it("a journal that cannot be opened is an io error from new", function()
    local c, err = pixflow.new{ provider = "apimart", api_key = KEY, journal = "/proc/pixflow/journal.jsonl" }
    assert.is_nil(c)
    assert.equal("io", err.kind)
  end)
end)

describe("journal reconciliation through a gateway's task list (DashScope)", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.4 }, function(s, d) sbx, dir = s, d end)

  local function intent(f, key, t, prompt)
    f:write(cjson.encode{ v = 1, ev = "intent", key = key, provider = "dashscope", base_url = sbx.base("dashscope"),
                          model = "c1", request = { prompt = prompt }, output = dir .. "/" .. key .. ".mp4", t = t }, "\n")
  end

  it("finds a submit whose answer was lost, and finishes it; settles one that never reached the gateway", function()
    sbx.reset()
    local core = require "pixflow.core"
    local path = dir .. "/ds.jsonl"
    local HERO = { { name = "hero", image = "https://e.com/h.png" } }
    local bare = assert(pixflow.new{ provider = "dashscope", api_key = "k", base_url = sbx.base("dashscope"),
                                     poll = { initial = 0.05, interval = 0.1 } })
    local journaled = assert(pixflow.new{ provider = "dashscope", api_key = "k", base_url = sbx.base("dashscope"),
                                          journal = path, poll = { initial = 0.05, interval = 0.1 } })
    local function settle(t, c) while not t.id do c:poll(0.05) end end
    -- lost: its intent is written, its submit reaches the gateway, its answer is never recorded
    local f = assert(io.open(path, "a"))
    intent(f, "lost", core.time(), "@hero one")
    f:close()
    local t1 = assert(bare:submit{ prompt = "@hero one", references = HERO })
    settle(t1, bare)
    -- then the next submit, recorded as usual
    local t2 = assert(journaled:submit({ prompt = "@hero two", references = HERO }, { output = dir .. "/two.mp4" }))
    settle(t2, journaled)
    -- never sent: an intent, and nothing at the gateway before the next recorded submit (a few
    -- seconds later: within the clocks' slack of the lost one (2 s, and the gateway's Date
    -- header, whole seconds), nothing could tell them apart)
    os.execute("sleep 4")
    f = assert(io.open(path, "a"))
    intent(f, "unsent", core.time(), "@hero three")
    f:close()
    local t4 = assert(journaled:submit({ prompt = "@hero four", references = HERO }, { output = dir .. "/four.mp4" }))
    settle(t4, journaled)
    bare:close()
    journaled:close()
    local report = assert(pixflow.resume{ journal = path, keys = { dashscope = "k" }, timeout = 20,
                                          poll = { initial = 0.05, interval = 0.1 } })
    local by = {}
    for _, r in ipairs(report.tasks) do by[r.key] = r end
    assert.equal("downloaded", by.lost.status)
    assert.equal(t1.id, by.lost.id)
    assert.equal("ftyp", util.read(dir .. "/lost.mp4"):sub(5, 8))
    assert.equal("not_created", by.unsent.status)
    assert.matches("never created", by.unsent.action)
    local st = sbx.stats().dashscope
    assert.equal(3, st.tasks)
    assert.equal(3, st.downloads)
  end)

  it("leaves two submits with one task between them unconfirmed: it never guesses", function()
    sbx.reset()
    local core = require "pixflow.core"
    local path = dir .. "/amb.jsonl"
    local now = core.time()
    local c = assert(pixflow.new{ provider = "dashscope", api_key = "k", base_url = sbx.base("dashscope"),
                                  poll = { initial = 0.05, interval = 0.1 } })
    local t = assert(c:submit{ prompt = "@hero x", references = { { name = "hero", image = "https://e.com/h.png" } } })
    while not t.id do c:poll(0.05) end
    c:close()
    local f = assert(io.open(path, "w"))
    intent(f, "a1", now - 0.2, "one")
    intent(f, "a2", now - 0.1, "two")
    f:close()
    local report = assert(pixflow.resume{ journal = path, keys = { dashscope = "k" }, timeout = 5 })
    -- two unconfirmed intents side by side: nothing tells which one made the task
    local by = {}
    for _, r in ipairs(report.tasks) do by[r.key] = r end
    assert.equal("unconfirmed", by.a1.status)
    assert.equal("unconfirmed", by.a2.status)
    assert.matches(t.id, by.a2.action, 1, true)      -- the candidate is shown to the user
    assert.equal(0, sbx.stats().dashscope.downloads)
  end)
end)
