-- The journal against an adversary: a submit another process still has in flight, a gateway
-- whose clock is off, a list that shifts while it is read, one journal under two names, lock
-- files removed under a live owner, a WAL that would grow forever, fsyncs inside the pump,
-- damaged and hand-edited rows, half-written lines, and a batch holding what it does not run.
-- Each of these was found by an adversarial run against the first SQLite journal.
local cjson = require "cjson"
local pixflow = require "pixflow"
local core = require "pixflow.core"
local journal = require "pixflow.journal"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local MODEL = "pixverse/pixverse-c1-r2v"
local HERO = { { name = "hero", image = "https://e.com/h.png" } }

local function sh(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  return ok == true or ok == 0
end

local function intent(j, key, t, base, output, stage)
  assert(j:record("intent", key, { t = t, provider = "dashscope", base_url = base, model = "c1", stage = stage,
    request = { prompt = "@hero " .. key, references = HERO, mode = "fusion", model = "c1", unified_model = "c1" },
    output = output }))
end

local function ds(sbx, extra)
  local o = { provider = "dashscope", api_key = "k", base_url = sbx.base("dashscope"),
              poll = { initial = 0.05, interval = 0.1 }, retry = { lookup_delay = 0.2, lookup_attempts = 2 } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(pixflow.new(o))
end

describe("the journal against an adversary", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.3, reset = true }, function(s, d) sbx, dir = s, d end)

  -- issue 14: submit never waits on the journal. Another process holds the journal's write lock
  -- (a sqlite3 command inside BEGIN IMMEDIATE until a flag file appears): submit returns a task
  -- while the lock is held, nothing reaches the gateway until the intent is written, and then
  -- the task goes out once. Ordering, not timing: the flag is made only after submit returned.
  it("submit returns while another process holds the journal's lock; the submit leaves after its intent", function()
    if not sh("command -v sqlite3") then pending("the sqlite3 command is not installed") return end
    local path, locked, release = dir .. "/held.db", dir .. "/locked", dir .. "/release"
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  journal = path, poll = { initial = 0.05, interval = 0.1 } })
    local holder = ("env -u LD_PRELOAD sqlite3 %s 'BEGIN IMMEDIATE;' "
      .. "\".shell touch %s; while [ ! -f %s ]; do sleep 0.02; done\" 'COMMIT;' >/dev/null 2>&1 &"):format(path, locked, release)
    assert(os.execute(holder))
    local deadline = os.time() + 10
    while not util.exists(locked) and os.time() <= deadline do os.execute("sleep 0.02") end
    assert.is_true(util.exists(locked), "the sqlite3 command did not take the lock")
    local t = assert(c:submit({ prompt = "while locked" }, { output = dir .. "/held.mp4" }))
    for _ = 1, 10 do c:poll(0.02) end
    assert.equal("submitting", t.status)
    assert.equal(0, sbx.stats().apimart.submits)   -- its intent is not written: nothing left
    assert(io.open(release, "w")):close()
    assert(t:wait{ timeout = 20 })
    assert.equal(1, sbx.stats().apimart.submits)
    c:close()
    pixflow.flush()
    local rows = assert(journal.read(path))
    assert.equal(1, #rows)
    assert.equal(t.id, rows[1].id)
  end)

  -- client:task(id, { key }) takes the task's claim on the worker: it returns while another
  -- process holds the journal's write lock, and its first poll waits for the claim
  it("client:task with a key returns while another process holds the journal's lock; it polls once claimed", function()
    if not sh("command -v sqlite3") then pending("the sqlite3 command is not installed") return end
    local path, locked, release = dir .. "/held2.db", dir .. "/locked2", dir .. "/release2"
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  journal = path, poll = { initial = 0.05, interval = 0.1 } })
    local t = assert(c:submit{ prompt = "attach me" })
    assert(t:wait{ timeout = 10 })
    local id, key = t.id, t.journal_key
    c:close()
    local r = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  journal = path, poll = { initial = 0.05, interval = 0.1 } })
    local holder = ("env -u LD_PRELOAD sqlite3 %s 'BEGIN IMMEDIATE;' "
      .. "\".shell touch %s; while [ ! -f %s ]; do sleep 0.02; done\" 'COMMIT;' >/dev/null 2>&1 &"):format(path, locked, release)
    assert(os.execute(holder))
    local deadline = os.time() + 10
    while not util.exists(locked) and os.time() <= deadline do os.execute("sleep 0.02") end
    assert.is_true(util.exists(locked), "the sqlite3 command did not take the lock")
    local polls = sbx.stats().apimart.polls
    local a = assert(r:task(id, { key = key }))
    for _ = 1, 10 do r:poll(0.02) end
    assert.equal("queued", a.status)
    assert.equal(polls, sbx.stats().apimart.polls)   -- not claimed yet: nothing was asked
    assert(io.open(release, "w")):close()
    assert(a:wait{ timeout = 20 })
    assert.is_true(sbx.stats().apimart.polls > polls)
    r:close()
  end)

  it("client:task with a key of a task another client follows halts with claimed, and never polls", function()
    local path = dir .. "/follow.db"
    local opts = { provider = "apimart", api_key = "k", base_url = sbx.base("apimart"), journal = path,
                   poll = { initial = 0.05, interval = 0.1 } }
    local c = assert(pixflow.new(opts))
    local t = assert(c:submit{ prompt = "slow #seconds=2" })
    while not t.id do c:poll(0.02) end
    local r = assert(pixflow.new(opts))
    local a = assert(r:task(t.id, { key = t.journal_key }))
    local ok, err = a:wait{ timeout = 10 }
    assert.is_nil(ok)
    assert.equal("claimed", err.code)
    assert.is_true(a.halted)
    assert.equal("queued", a.status)
    assert.matches("being followed by another running pixflow process %(pid %d+%)", err.message)
    assert.matches("is left to that one", tostring(err))
    -- asking again, once the first client let it go, follows it
    assert(t:wait{ timeout = 10 })
    c:close()
    local again = assert(r:task(t.id, { key = t.journal_key }))
    assert.are_not.equal(a, again)
    assert(again:wait{ timeout = 10 })
    assert.equal("succeeded", again.status)
    r:close()
  end)

  it("a lookup never adopts a task another live process is still submitting", function()
    local path = dir .. "/rival.db"
    -- process B (another owner of the journal): its intent is written, its submit reached the
    -- gateway, its answer has not come yet
    local b = assert(journal.open(path))
    intent(b, "b-inflight", core.time(), sbx.base("dashscope"), dir .. "/b.mp4", "sending")
    local bare = ds(sbx)
    local tb = assert(bare:submit{ prompt = "@hero b", references = HERO })
    while not tb.id do bare:poll(0.05) end
    -- process A: its own submit is lost on the way (the connection drops before the gateway
    -- handles it), so the only task in its window is B's
    sbx.faults{ { gateway = "dashscope", route = "submit", action = "reset", times = 1 } }
    local a = ds(sbx, { journal = path })
    local ta = assert(a:submit({ prompt = "@hero a", references = HERO }, { output = dir .. "/a.mp4" }))
    local deadline = pixflow.now() + 15
    while not ta.done and pixflow.now() < deadline do a:poll(0.05) end
    assert.equal("unconfirmed", ta.status)
    assert.is_nil(ta.id, "A adopted B's task: " .. tostring(ta.id))
    a:close()
    bare:close()
    b:close()
  end)

  it("a gateway clock ten seconds behind moves the window (its Date header says so)", function()
    local now = core.time()
    assert(sandbox.request("POST", sbx.url .. "/_sandbox/clock", cjson.encode{ now = now - 10 }) == 200)
    local path = dir .. "/skew10.db"
    local j = assert(journal.open(path))
    intent(j, "lost", now - 1, sbx.base("dashscope"), dir .. "/lost.mp4")
    j:close()
    local bare = ds(sbx)
    local t = assert(bare:submit{ prompt = "@hero lost", references = HERO })   -- created at now - 10
    while not t.id do bare:poll(0.05) end
    bare:close()
    local report = assert(pixflow.resume{ journal = path, keys = { dashscope = "k" }, timeout = 0.5,
                                          download = false })
    assert.are_not.equal("not_created", report.tasks[1].status, "a paid task called never created")
    assert.equal(t.id, report.tasks[1].id)
  end)

  it("a list that lists one task twice (it shifted while read) is not complete", function()
    local now = core.time()
    local path = dir .. "/dup.db"
    local j = assert(journal.open(path))
    intent(j, "dup", now - 30, sbx.base("dashscope"), dir .. "/dup.mp4")
    j:close()
    local one = ('{"task_id":"11111111-2222-3333-4444-555555555555","status":"SUCCEEDED","gmt_create":%d}')
      :format(math.floor((now - 3600) * 1000))
    sbx.faults{ { gateway = "dashscope", route = "list", action = "reply", status = 200,
                  body = ('{"request_id":"r","total":2,"total_page":1,"page_no":1,"page_size":100,"data":[%s,%s]}')
                    :format(one, one) } }
    local report = assert(pixflow.resume{ journal = path, keys = { dashscope = "k" }, timeout = 2 })
    assert.equal("unconfirmed", report.tasks[1].status)
    assert.matches("could not be read to its end", report.tasks[1].action)
  end)

  it("one journal under two names (a symbolic link) has one set of owners; a hard link is refused", function()
    local real, link = dir .. "/real.db", dir .. "/link.db"
    local a = assert(journal.open(real))
    assert(sh(("ln -s %s %s"):format(real, link)))
    local b = assert(journal.open(link))
    assert.equal("taken", (a:claim("output:/x.mp4")))
    local how, pid = b:claim("output:/x.mp4")
    assert.equal("held", how)
    assert.is_number(pid)
    b:close()
    a:close()
    assert(sh(("ln %s %s/hard.db"):format(real, dir)))
    local c, err = journal.open(real)
    assert.is_nil(c)
    assert.matches("hard links", err.message)
  end)

  it("a lock file removed under a live owner does not make it dead", function()
    local path = dir .. "/locks.db"
    local a = assert(journal.open(path))
    assert.equal("taken", (a:claim("output:/y.mp4")))
    assert(sh(("rm -rf %s.owners"):format(path)))
    local b = assert(journal.open(path))
    assert.equal("held", (b:claim("output:/y.mp4")))
    b:close()
    a:close()
  end)

  it("the WAL stays bounded while a process keeps the journal open", function()
    local path = dir .. "/wal.db"
    local j = assert(journal.open(path))
    intent(j, "w", core.time(), sbx.base("dashscope"), nil)
    for i = 1, 3000 do
      assert(j:record("status", "w", { status = "running", error = { message = ("x"):rep(200) .. i } }))
    end
    local st = assert(core.stat(path .. "-wal"))
    assert.is_true(st.size < 8 * 1024 * 1024, "the WAL is " .. st.size .. " bytes")
    j:close()
  end)

  -- #noasan: strace runs the driver without the ASan runtime the suite preloads under test-asan
  it("the pump never syncs the journal, even right after another process checkpointed it #noasan", function()
    if not sh("command -v strace") then pending("strace is not installed") return end
    local path, log, script = dir .. "/pump.db", dir .. "/strace.log", dir .. "/pump.lua"
    local f = assert(io.open(script, "w"))
    f:write(([[
      local pixflow = require "pixflow"
      local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = %q, journal = %q,
                                    poll = { initial = 0.05, interval = 0.05 } })
      local tasks = {}
      for i = 1, 40 do tasks[i] = assert(c:submit({ prompt = "p" .. i }, { output = %q .. i .. ".mp4" })) end
      io.stderr:write("PUMP-START\n")
      local busy = true
      while busy do
        busy = false
        for i = 1, 40 do
          if not tasks[i].done then busy = true end
          if i %% 10 == 0 then os.execute("env -u LD_PRELOAD sqlite3 %s 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null 2>&1") end
        end
        c:poll(0)
        io.stderr:write("POLL-END\n")
        os.execute("sleep 0.02")
      end
      io.stderr:write("PUMP-END\n")
      c:close()
    ]]):format(sbx.base("apimart"), path, dir .. "/o", path))
    f:close()
    if not sh("command -v sqlite3") then pending("the sqlite3 command is not installed") return end
    local status = util.run(("strace -f -qq -e trace=write,fsync,fdatasync -o %s env LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
      .. "LUA_CPATH='build/?.so;;' lua5.4 %s"):format(log, script))
    assert.equal(0, status)
    local text = assert(util.read(log))
    local pump = text:match("PUMP%-START(.*)PUMP%-END")
    assert.is_not_nil(pump, "no pump in the trace")
    -- the syncs of the sqlite3 command's own checkpoints are its own process's; ours must be none
    local main_pid = text:match("^(%d+)")
    local n = 0
    for line in pump:gmatch("[^\n]+") do
      local pid = line:match("^(%d+)")
      if pid == main_pid and line:find("sync%(") then n = n + 1 end
    end
    assert.equal(0, n, "syncs inside the pump")
  end)

  it("resume skips a damaged row (an id without its intent) and an unknown provider, and finishes the rest", function()
    local state = dir .. "/dmg"
    os.execute("mkdir -p " .. state)
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  journal = state .. "/j.db", poll = { initial = 0.05, interval = 0.1 } })
    local t = assert(c:submit({ prompt = "good" }, { output = dir .. "/good.mp4" }))
    while not t.id do c:poll(0.05) end
    c:close()
    local f = assert(io.open(state .. "/j.jsonl", "w"))
    f:write('{"v":1,"ev":"accepted","key":"orphan","id":"task_ORPHAN","t":1795000001}\n')
    f:write(cjson.encode{ v = 1, ev = "intent", key = "alien", provider = "nosuch", base_url = "http://127.0.0.1:1/x",
                          model = "v6", request = { prompt = "x" }, t = 1795000002 }, "\n")
    f:write('{"v":1,"ev":"accepted","key":"alien","id":"task_ALIEN","t":1795000003}\n')
    f:write('{"v":1,"ev":"intent","key":"far","provider":"apimart","t":1e300}\n')
    f:close()
    local report = assert(pixflow.resume{ journal = state .. "/j.db", keys = { apimart = "k" }, timeout = 10,
                                          poll = { initial = 0.05, interval = 0.1 } })
    local by = {}
    for _, r in ipairs(report.tasks) do by[r.key] = r end
    assert.equal("downloaded", by[t.journal_key].status)
    assert.equal("damaged", by.orphan.status)
    assert.matches("task_ORPHAN", by.orphan.action)
    assert.is_not_nil(by.alien.error)
    local status, out = util.run(("XDG_STATE_HOME=%s bin/pixflow list --journal %s/j.db"):format(dir, state))
    assert.equal(0, status, out)
  end)

  it("a half-written last line of an old journal waits until it is whole", function()
    local path = dir .. "/half.jsonl"
    local f = assert(io.open(path, "w"))
    f:write(cjson.encode{ v = 1, ev = "intent", key = "h", provider = "apimart", base_url = sbx.base("apimart"),
                          model = "v6", request = { prompt = "x" }, t = 1795000000 }, "\n")
    f:write('{"v":1,"ev":"accepted","key":"h","id":"task_')
    f:close()
    local tasks, warnings = assert(journal.read(path))
    assert.is_nil(tasks[1].id)
    assert.matches("half.jsonl:2 is incomplete", warnings[1])
    f = assert(io.open(path, "a"))
    f:write('HALF","t":1795000001}\n')
    f:close()
    tasks, warnings = assert(journal.read(path))
    assert.equal("task_HALF", tasks[1].id)
    assert.equal(0, #warnings)
  end)

  it("an owner a hand edit put in the database is never a file name", function()
    if not sh("command -v sqlite3") then pending("the sqlite3 command is not installed") return end
    local path = dir .. "/edit.db"
    local j = assert(journal.open(path))
    j:close()
    local victim = dir .. "/victim.txt"
    assert(io.open(victim, "w")):close()
    assert(sh(("env -u LD_PRELOAD sqlite3 %s \"INSERT INTO owners VALUES('../victim.txt', 1, 'h', 0); "
      .. "INSERT INTO claims VALUES('output:/z', '../victim.txt', 0)\""):format(path)))
    assert(sh(("cp %s %s.owners/../victim.txt 2>/dev/null; true"):format(victim, path)))
    j = assert(journal.open(path))
    assert.equal("held", (j:claim("output:/z")))            -- not ours to take, and not deleted
    j:close()
    assert.is_true(util.exists(victim))
  end)

  it("a batch gives up the outputs it does not run: a resume beside it can download one", function()
    local path = dir .. "/beside.db"
    -- a task of an earlier run, succeeded and not downloaded, that a resume is following
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  journal = path, poll = { initial = 0.05, interval = 0.1 } })
    local t = assert(c:submit({ prompt = "earlier" }, { output = dir .. "/p.mp4" }))
    assert(t:wait{ timeout = 10 })
    c:close()
    local r = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  journal = path, poll = { initial = 0.05, interval = 0.1 } })
    local rt = assert(r:task(t.id, { key = t.journal_key }))
    assert(rt:wait{ timeout = 10 })
    local started, derr
    local summary = assert(pixflow.batch({ { output = dir .. "/p.mp4", prompt = "earlier" },
                                           { output = dir .. "/q.mp4", prompt = "slow #seconds=1" } }, {
      journal = path, keys = { apimart = "k" }, base_urls = { apimart = sbx.base("apimart") },
      poll = { initial = 0.05, interval = 0.1 }, timeout = 20,
      on_tick = function()
        if not started then started, derr = rt:start_download(dir .. "/p.mp4") end
      end }))
    assert.is_true(started, tostring(derr))
    assert.equal("claimed", summary[1].status)
    while rt:download_state() == "running" do r:poll(0.05) end
    assert.equal("done", rt:download_state())
    r:close()
  end)

  it("processes opening a new journal at the same moment all open it (none told it is busy)", function()
    -- two fresh readers of a new database both want to convert it to WAL: SQLite tells one of
    -- them SQLITE_BUSY at once, bypassing the busy timeout. Found by CI: a second batch started
    -- beside the first failed with "cannot use write-ahead logging: database is locked"
    local script, go = dir .. "/open.lua", dir .. "/go"
    local f = assert(io.open(script, "w"))
    f:write(([[
      local core = require "pixflow.core"
      while not io.open(%q) do end
      local j, err = core.open_journal(arg[1])
      if not j then io.stdout:write("FAILED ", tostring(err and err.message or err), "\n") os.exit(1) end
      j:close()
    ]]):format(go))
    f:close()
    local failed = {}
    for round = 1, 25 do
      local _, out = util.run(("rm -f %s; for p in 1 2 3 4; do env LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
        .. "LUA_CPATH='build/?.so;;' lua5.4 %s %s/race-%d.db & done; sleep 0.15; touch %s; wait")
        :format(go, script, dir, round, go))
      for line in out:gmatch("FAILED[^\n]*") do failed[#failed + 1] = line .. "\n" end
    end
    assert.equal(0, #failed, table.concat(failed))
  end)
end)
