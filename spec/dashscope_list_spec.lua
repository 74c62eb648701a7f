-- DashScope's task list as the status poll of every in-flight task (issue 14; csrc/engine/listpoll.c):
-- one list query a round serves all the client's tasks, a task's own status is read only when
-- the list shows it changed (or does not show it), every page is read, every query stays within
-- the documented 24 hours; and reconciliation concludes no "never created" from a list that may
-- no longer show the task. On virtual time: the sandbox's clock moves with the engine's.
local cjson = require "cjson"
local pixflow = require "pixflow"
local core = require "pixflow.core"
local journal = require "pixflow.journal"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local MODEL = "pixverse/pixverse-c1-r2v"      -- DashScope's name for c1
local HERO = { { name = "hero", image = "https://e.com/h.png" } }

local sbx, dir

local function set_clock(now)
  assert.equal(200, (sandbox.request("POST", sbx.url .. "/_sandbox/clock", cjson.encode{ now = now })))
end

-- Finished tasks of key "k" made at created, created + spacing, ... (a long task list).
local function seed(count, created, spacing)
  local code, body = sandbox.request("POST", sbx.url .. "/_sandbox/tasks", cjson.encode{
    gateway = "dashscope", key = "k", model = MODEL, count = count, created = created, spacing = spacing or 0 })
  assert(code == 200, body)
end

-- A client on the manual clock, the sandbox's clock set to its wall clock; before(wall0) runs
-- then (seeding), prompts[i] is submitted at virtual time 0 (a string, or a duration in seconds;
-- or { seconds =, at = }: submitted at virtual time at), and both clocks move from due time to
-- due time until every task ended. Returns the tasks, the states each went through, the requests
-- of the run, and each task's lateness (from its end to the end being noticed, in seconds).
local function run(prompts, poll, opts)
  opts = opts or {}
  local c = assert(pixflow.new{ provider = "dashscope", api_key = "k", base_url = sbx.base("dashscope"),
                                clock = "manual", poll = poll, trace = opts.trace,
                                task_timeout = opts.task_timeout })
  local wall0 = c._core:_wall_now()
  set_clock(wall0)
  if opts.before then opts.before(wall0) end
  local tasks, seen, late, ends = {}, {}, {}, {}
  local now = 0
  c:on_change(function(t)
    local s = seen[t]
    if s and s[#s] ~= t.status then s[#s + 1] = t.status end
    if t.done and ends[t] and not late[t] then late[t] = now - ends[t] end
  end)
  local function submit_due()
    for i, p in ipairs(prompts) do
      local at = type(p) == "table" and p.at or 0
      if not tasks[i] and at <= now + 1e-9 then
        local secs = type(p) == "table" and p.seconds or p
        local prompt = type(secs) == "number" and ("@hero walks #seconds=%g"):format(secs) or secs
        tasks[i] = assert(c:submit{ prompt = prompt, references = HERO })
        seen[tasks[i]] = { tasks[i].status }
        if type(secs) == "number" then ends[tasks[i]] = now + secs end
      end
    end
  end
  for _ = 1, 200000 do
    submit_due()
    repeat c:poll(0.001) local r, q, _, j, left = c._core:_transfers() until r == 0 and q == 0 and j == 0 and not left
    local all = true
    for i = 1, #prompts do if not (tasks[i] and tasks[i].done) then all = false end end
    if all then break end
    if opts.each then opts.each(c, now, tasks) end
    local dt = c._core:_next_due()
    for i, p in ipairs(prompts) do
      if not tasks[i] and (not dt or p.at - now < dt) then dt = p.at - now end
    end
    assert(dt, "nothing due while tasks are unfinished")
    c._core:_advance_clock(math.max(dt, 0))
    now = now + math.max(dt, 0)
    set_clock(wall0 + now)
  end
  c:close()
  set_clock(0)
  return tasks, seen, sbx.stats().dashscope, late
end

-- The trace's requests of one kind, counted by task id (the list's have none: "").
local function traced(path, kind)
  local by, n = {}, 0
  for line in io.lines(path) do
    local r = cjson.decode(line)
    if r.request == kind then
      local id = r.task_id or ""
      by[id] = (by[id] or 0) + 1
      n = n + 1
    end
  end
  return by, n
end

describe("DashScope's task list polls every in-flight task", function()
  sandbox.around({ task_seconds = 60, reset = true }, function(s, d) sbx, dir = s, d end)

  it("N tasks in flight: about one list request a round instead of a status request each", function()
    local durations = {}
    for i = 1, 12 do durations[i] = 40 + 2 * i end             -- 42 .. 64 s
    local tasks, _, st = run(durations)
    for _, t in ipairs(tasks) do assert.equal("succeeded", t.status, tostring(t.error)) end
    -- each task's own status is read once, when the list shows it ended (and the first task's
    -- first poll, before a second task was due: one task alone polls by itself)
    assert.is_true(st.polls <= #tasks + 1, "status requests: " .. st.polls)
    -- a round every 5 s over 64 s, one page each (the tasks fit on one page)
    assert.is_true(st.lists <= 64 / 5 + 3, "list requests: " .. st.lists)
    assert.equal(0, st.list_rejected)
    -- without the list: every task every 5 s
    sbx.reset()
    local _, _, off = run(durations, { list = false })
    assert.is_true(off.polls >= 120, "per-task polls: " .. off.polls)
    assert.equal(0, off.lists)
    assert.is_true(st.polls + st.lists <= off.polls / 4,
      ("%d requests with the list, %d without"):format(st.polls + st.lists, off.polls))
  end)

  it("a task's own status is read only when the list shows it changed: queued to running comes from the list", function()
    local trace = dir .. "/trace.jsonl"
    local tasks, seen = run({ 40, 45, 50, 55, 60, "@hero trips #seconds=30 #fail" }, nil, { trace = trace })
    local status_by = traced(trace, "status")
    local _, lists = traced(trace, "list")
    assert.is_true(lists > 0)
    local firsts = 0
    for i, t in ipairs(tasks) do
      assert.equal(i == 6 and "failed" or "succeeded", t.status)
      -- queued, then running (seen on the list: no status read), then the end
      assert.same({ "submitting", "queued", "running", t.status }, seen[t])
      local n = status_by[t.id] or 0
      assert.is_true(n >= 1 and n <= 2, t.id .. ": " .. n .. " status requests")
      if n == 2 then firsts = firsts + 1 end
    end
    assert.is_true(firsts <= 1, firsts .. " tasks polled by themselves before the end")
    assert.matches("failed", tostring(tasks[6].error))
  end)

  it("reads every page of the list, and a status at a time when the whole list is dear", function()
    -- 150 earlier tasks in the window: the list takes two pages, and these tasks are on the
    -- second (the sandbox lists the oldest first)
    local tasks, _, st = run({ 30, 32, 34, 36, 38 }, nil, { before = function(w) seed(150, w - 600, 1) end })
    for _, t in ipairs(tasks) do assert.equal("succeeded", t.status) end
    assert.is_true(st.polls <= #tasks + 1, "status requests: " .. st.polls)
    assert.is_true(st.lists >= 2 * 6, "list pages: " .. st.lists)
    assert.equal(0, st.list_status)
    -- 450: five pages a round; the unfinished tasks' own queries (PENDING, RUNNING) are cheaper
    sbx.reset()
    tasks, _, st = run({ 30, 32, 34, 36, 38 }, nil, { before = function(w) seed(450, w - 600, 1) end })
    for _, t in ipairs(tasks) do assert.equal("succeeded", t.status) end
    assert.is_true(st.polls <= #tasks + 1, "status requests: " .. st.polls)
    assert.is_true(st.list_status > 0, "no query of one status")
    -- about two pages a round (and one page of the whole list to learn it is dear)
    assert.is_true(st.lists <= 2 * (38 / 5 + 3) + 2, "list pages: " .. st.lists)
  end)

  it("a round that read every unfinished task notices an end at once, whenever the task's own poll is due", function()
    -- a long list (so the rounds ask for PENDING and RUNNING tasks only), and 16 tasks of 60 s:
    -- the client learns that its tasks take a minute, and its own polls of the next ones skip
    -- their first 55 s; 20 s tasks submitted then are noticed by the rounds all the same (two
    -- long tasks keep the rounds going every 5 s)
    local prompts = { 200, 201 }
    for i = 1, 16 do prompts[2 + i] = 60 + i * 0.1 end
    for i = 1, 4 do prompts[18 + i] = { seconds = 20 + i, at = 70 } end
    -- no jitter: with it, the rounds' times (set by the members' own polls) moved from run to
    -- run, and one in four a member the list had just shown running waited 25 s for the next
    -- round (the spec is about what a round does, not about when the next one comes)
    local tasks, _, st, late = run(prompts, { jitter = 0 }, { before = function(w) seed(450, w - 600, 1) end })
    for _, t in ipairs(tasks) do assert.equal("succeeded", t.status) end
    assert.is_true(st.list_status > 0)
    for i = 19, 22 do
      assert.is_true(late[tasks[i]] <= 5 + 0.5, ("task %d noticed %.2f s after its end"):format(i, late[tasks[i]]))
    end
  end)

  it("a task the list does not show polls by itself; a list that shows none of them is left alone", function()
    sbx.faults{ { gateway = "dashscope", route = "list", action = "reply", status = 200,
                  body = '{"request_id":"r","data":[],"total":0,"total_page":0,"page_no":1,"page_size":100}' } }
    local tasks, _, st = run({ 30, 32, 34, 36 })
    for _, t in ipairs(tasks) do assert.equal("succeeded", t.status) end
    -- every poll came to the task's own status request in the end
    assert.is_true(st.polls >= 4 * 6, "status requests: " .. st.polls)
    -- three rounds that showed none of the tasks, then the client stops asking the list (the
    -- fault answers each list request: the sandbox counts them as faults)
    assert.is_true(st.faults >= 1 and st.faults <= 3, "list requests: " .. st.faults)
    -- a page that does not say whether more follow: what it shows serves, the rest poll alone
    sbx.reset()
    sbx.faults{ { gateway = "dashscope", route = "list", action = "reply_after", status = 200,
                  body = '{"request_id":"r","data":[]}' } }
    tasks, _, st = run({ 30, 32 })
    for _, t in ipairs(tasks) do assert.equal("succeeded", t.status) end
    assert.is_true(st.polls >= 2 * 6, "status requests: " .. st.polls)
  end)

  it("a task canceled while the list polls it ends canceled; the others are served on", function()
    local asked = false
    local tasks, _, st = run({ 40, 42, 44, 46 }, nil, {
      each = function(_, now, ts) if now >= 1 and not asked then asked = true assert(ts[1]:_cancel()) end end,
    })
    assert.equal("canceled", tasks[1].status)
    for i = 2, 4 do assert.equal("succeeded", tasks[i].status) end
    assert.is_true(st.lists > 0)
    assert.is_true(st.polls <= 4 + 3, "status requests: " .. st.polls)
  end)

  it("asks for at most 24 hours a query: tasks made seven hours ago are still found on the list", function()
    local seven = 7 * 3600
    local tasks, _, st = run({ seven, seven + 10, seven + 20 }, nil, { task_timeout = 0 })
    for _, t in ipairs(tasks) do assert.equal("succeeded", t.status) end
    assert.equal(0, st.list_rejected, "a query over 24 hours was sent")
    -- the rounds found them all along (two queries a round past six hours: a padded window is
    -- 18 hours longer than the tasks' age)
    assert.is_true(st.polls <= #tasks + 1, "status requests: " .. st.polls)
  end)

  it("poll.list = false: each task polls by itself", function()
    local _, _, st = run({ 20, 21, 22 }, { list = false })
    assert.equal(0, st.lists)
    assert.is_true(st.polls >= 3 * 4)
  end)
end)

describe("reconciliation and the 24 hours DashScope keeps a task", function()
  sandbox.around({ task_seconds = 0.3, reset = true }, function(s, d) sbx, dir = s, d end)

  it("a live submit whose answer was lost, and a list that cannot be read to its end: unconfirmed, never 'never created'", function()
    -- the submit makes its task and the connection drops; every list page then answers without
    -- saying whether more follow
    sbx.faults{ { gateway = "dashscope", route = "submit", action = "reset_after", times = 1 },
                { gateway = "dashscope", route = "list", action = "reply", status = 200,
                  body = '{"request_id":"r","data":[]}' } }
    local c = assert(pixflow.new{ provider = "dashscope", api_key = "k", base_url = sbx.base("dashscope"),
                                  retry = { lookup_delay = 0.05 }, poll = { initial = 0.05, interval = 0.1 } })
    local t = assert(c:submit{ prompt = "@hero lost", references = HERO })
    local ok, err = t:wait{ timeout = 10 }
    assert.is_nil(ok)
    assert.equal("unconfirmed", t.status)
    assert.matches("could not be read to its end", err.message)
    assert.is_falsy(err.message:find("never created", 1, true))
    local st = sbx.stats().dashscope
    assert.equal(1, st.submits)
    assert.equal(1, st.tasks)
    c:close()
  end)

  it("concludes no 'never created' for a submit more than a day old: the list may no longer show it", function()
    local path = dir .. "/old.db"
    local j = assert(journal.open(path))
    assert(j:record("intent", "old", { t = core.time() - 30 * 3600, provider = "dashscope",
      base_url = sbx.base("dashscope"), model = "c1", output = dir .. "/old.mp4",
      request = { prompt = "@hero old", references = HERO, mode = "fusion", model = "c1", unified_model = "c1" } }))
    j:close()
    local report = assert(pixflow.resume{ journal = path, keys = { dashscope = "k" }, timeout = 5 })
    local st = sbx.stats().dashscope
    assert.equal(0, st.list_rejected, "a query over 24 hours was sent")
    assert.is_true(st.lists >= 3, "30 hours and the padding: three queries at least, read " .. st.lists)
    assert.equal("unconfirmed", report.tasks[1].status)
    assert.equal(0, st.submits)
    assert.is_false(util.exists(dir .. "/old.mp4"))
  end)
end)
