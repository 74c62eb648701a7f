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
-- then (seeding), prompts[i] is submitted at virtual time 0 (a string, or a duration in seconds),
-- and both clocks move from due time to due time until every task ended. Returns the tasks, the
-- states each went through, the requests of the run and the client (closed).
local function run(prompts, poll, opts)
  opts = opts or {}
  local c = assert(pixflow.new{ provider = "dashscope", api_key = "k", base_url = sbx.base("dashscope"),
                                clock = "manual", poll = poll, trace = opts.trace,
                                task_timeout = opts.task_timeout })
  local wall0 = c._core:_wall_now()
  set_clock(wall0)
  if opts.before then opts.before(wall0) end
  local tasks, seen = {}, {}
  c:on_change(function(t)
    local s = seen[t]
    if s and s[#s] ~= t.status then s[#s + 1] = t.status end
  end)
  for i, p in ipairs(prompts) do
    local prompt = type(p) == "number" and ("@hero walks #seconds=%g"):format(p) or p
    tasks[i] = assert(c:submit{ prompt = prompt, references = HERO })
    seen[tasks[i]] = { tasks[i].status }
    if opts.after_submit then opts.after_submit(c, tasks[i], i) end
  end
  local now = 0
  for _ = 1, 200000 do
    repeat c:poll(0.001) local r, q = c._core:_transfers() until r == 0 and q == 0
    local all = true
    for _, t in ipairs(tasks) do if not t.done then all = false end end
    if all then break end
    if opts.each then opts.each(c, now, tasks) end
    local dt = assert(c._core:_next_due(), "nothing due while tasks are unfinished")
    c._core:_advance_clock(math.max(dt, 0))
    now = now + math.max(dt, 0)
    set_clock(wall0 + now)
  end
  c:close()
  set_clock(0)
  return tasks, seen, sbx.stats().dashscope, c
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

describe("reconciliation and the 24 hours DashScope keeps a task", function()
  sandbox.around({ task_seconds = 0.3, reset = true }, function(s, d) sbx, dir = s, d end)

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
