-- The pump's budget (issue 14): one poll does a bounded amount of work; what is left (due
-- timers, ended transfers) waits, in order, for the next poll, and nothing is lost or done twice.
-- No timing is asserted: with a budget far below what one completion costs, each poll handles
-- exactly the minimum (one item of each kind), which is a count, not a speed.
local pixflow = require "pixflow"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local N = 30

local function client(sbx, budget)
  return assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                             clock = "manual", budget = budget,
                             poll = { initial = 1, interval = 1, jitter = 0, adaptive = false } })
end

-- N tasks accepted, their first status polls all due at once (the manual clock stands still
-- until moved), and their generations finished at the sandbox.
local function ready(sbx, c)
  local tasks = {}
  for i = 1, N do tasks[i] = assert(c:submit({ model = "v6", prompt = "shot " .. i .. " #seconds=0.2" })) end
  local deadline = os.time() + 20
  repeat
    c:poll(0.05)
    local accepted = 0
    for _, t in ipairs(tasks) do if t.id then accepted = accepted + 1 end end
  until accepted == N or os.time() > deadline
  os.execute("sleep 0.5")
  c._core:_advance_clock(1.5)
  return tasks
end

describe("the pump's budget", function()
  local sbx
  sandbox.around({ task_seconds = 0.2, reset = true }, function(s) sbx = s end)

  it("leaves due timers and ended transfers to later polls, in order, and loses none", function()
    local c = client(sbx, 0.00001)
    local tasks = ready(sbx, c)
    local first = sbx.stats().apimart.polls
    local order = {}
    -- listening before the first poll: its one status request may be answered within it
    c:on_change(function(t) if t.status == "succeeded" then order[#order + 1] = t.id end end)
    -- one poll(0) fires one due timer, not thirty
    c:poll(0)
    local polls = 0
    local most = 0
    local deadline = os.time() + 30
    repeat
      local before = 0
      for _, t in ipairs(tasks) do if t.done then before = before + 1 end end
      c:poll(0)
      polls = polls + 1
      local after = 0
      for _, t in ipairs(tasks) do if t.done then after = after + 1 end end
      if after - before > most then most = after - before end
      if after < N then os.execute("sleep 0.005") end
    until after == N or os.time() > deadline
    for _, t in ipairs(tasks) do assert.equal("succeeded", t.status) end
    -- each poll ended at most one task: the budget split the thirty replies over thirty polls
    assert.is_true(most <= 2, "a poll ended " .. most .. " tasks")
    assert.is_true(polls >= N / 2, polls .. " polls")
    assert.equal(N, #order)
    -- one status request per task: nothing was sent twice while it waited for its turn
    local st = sbx.stats().apimart
    assert.equal(N, st.tasks)
    assert.equal(N, st.polls - first)
    c:close()
  end)

  it("with the default budget, one poll handles every task that ended at once", function()
    local c = client(sbx, 10)               -- ten seconds: nothing is left over
    local tasks = ready(sbx, c)
    local deadline = os.time() + 30
    local done
    repeat
      c:poll(0.05)
      done = 0
      for _, t in ipairs(tasks) do if t.done then done = done + 1 end end
    until done == N or os.time() > deadline
    assert.equal(N, done)
    c:close()
  end)

  -- a download's bytes count against the budget too: past it, the transfer is paused (libcurl
  -- keeps the chunk in hand) and the next poll goes on, so a large file is spread over many
  -- polls instead of one poll writing megabytes; counted in polls, not timed
  it("spreads a large download over polls, one chunk each when the budget is tiny, and the file is whole", function()
    local SIZE = 2 * 1024 * 1024
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  budget = 0.00001, poll = { initial = 0.05, interval = 0.05 } })
    local t = assert(c:submit({ model = "v6", prompt = "big #seconds=0.1 #size=" .. SIZE }))
    assert(t:wait{ timeout = 20 })
    local path = os.tmpname()
    os.remove(path)
    assert(t:start_download(path))
    local polls = 0
    local deadline = os.time() + 30
    while t:download_state() == "running" and os.time() <= deadline do
      c:poll(0.01)
      polls = polls + 1
    end
    assert.equal("done", t:download_state())
    local f = assert(io.open(path, "rb"))
    local size = f:seek("end")
    f:close()
    os.remove(path)
    assert.equal(SIZE, size)
    -- 64 KiB reads: at most two chunks (the first of the poll, and one a paused transfer hands
    -- back on its way) per poll
    assert.is_true(polls >= SIZE / (2 * 65536), polls .. " polls for " .. SIZE .. " bytes")
    c:close()
  end)

  -- every running download receives in each of libcurl's performs, so how many run at once
  -- bounds one pump's work (200 at once cost a pump 1.6 ms in W5): about one per 75 us of
  -- budget, the rest waiting their turn in order; counted at the server, not timed
  it("runs about one download per 75 us of budget at once, the rest in turn, and every file is whole", function()
    local N, SIZE = 12, 3 * 1000 * 1000
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  budget = 0.0003, max_per_host = 64,
                                  poll = { initial = 0.05, interval = 0.05 } })
    local tasks = {}
    for i = 1, N do
      tasks[i] = assert(c:submit({ model = "v6", prompt = "dl " .. i .. " #seconds=0.1 #size=" .. SIZE }))
    end
    -- all twelve started together, once every task has succeeded
    local deadline = os.time() + 60
    local ready
    repeat
      c:poll(0.01)
      ready = 0
      for _, t in ipairs(tasks) do if t.status == "succeeded" then ready = ready + 1 end end
    until ready == N or os.time() > deadline
    assert.equal(N, ready)
    for i, t in ipairs(tasks) do assert(t:start_download(dir .. "/" .. i .. ".mp4")) end
    local done
    repeat
      c:poll(0.01)
      done = 0
      for _, t in ipairs(tasks) do if t:download_state() == "done" then done = done + 1 end end
    until done == N or os.time() > deadline
    assert.equal(N, done)
    for i = 1, N do
      local f = assert(io.open(dir .. "/" .. i .. ".mp4", "rb"))
      assert.equal(SIZE, f:seek("end"))
      f:close()
    end
    local most = sbx.stats().apimart.most_sending
    -- 0.3 ms of budget: 4 at once (12 would all run, max_per_host allowing them)
    assert.is_true(most >= 1 and most <= 4, most .. " downloads at once")
    c:close()
    os.execute("rm -rf " .. dir)
  end)

  it("stops a download sent without a Content-Length at max_download_bytes", function()
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  max_download_bytes = 1000000, poll = { initial = 0.05, interval = 0.05 } })
    local t = assert(c:submit({ model = "v6", prompt = "long #seconds=0.1 #nolength #size=3000000" }))
    assert(t:wait{ timeout = 20 })
    local path = os.tmpname()
    os.remove(path)
    local ok, err = t:download(path, { timeout = 20 })
    assert.is_nil(ok)
    assert.equal("too_large", err.code)
    assert.matches("max_download_bytes", err.message)
    assert.is_nil(io.open(path, "rb"))
    -- the engine's worker removed the .part before the download read failed
    assert.is_nil(io.open(path .. ".part", "rb"))
    c:close()
  end)

  it("is an option with a range: 0 and a string are refused before anything is sent", function()
    local ok, err = pcall(pixflow.new, { provider = "apimart", api_key = "k", base_url = sbx.base("apimart"), budget = 0 })
    assert.is_false(ok)
    assert.matches("field 'budget' must be from 1e%-05 to 10, got 0", err)
    ok, err = pcall(pixflow.new, { provider = "apimart", api_key = "k", base_url = sbx.base("apimart"), budget = "1ms" })
    assert.is_false(ok)
    assert.matches("budget", err)
    assert.equal(0, sbx.stats().apimart.tasks)
  end)
end)

-- The worker never takes the core from the caller's thread when it wakes (issue 14): it runs 10
-- nice steps below it and as a batch thread (SCHED_BATCH, which never preempts on waking; under
-- perf sched a nice value alone let it preempt the caller's thread 21 times in one W5 row).
describe("the worker thread", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.2, reset = true }, function(s, d) sbx, dir = s, d end)

  -- closing a connection given up mid-reply sends a reset and frees what was unread: 0.1-0.2 ms
  -- of a pump in W5's bigurl row, now the worker's (spec/support/closewho.c names the thread of
  -- every TCP socket's close)
  it("closes the sockets libcurl is done with, none on the caller's thread #linux", function()
    local so, log = dir .. "/closewho.so", dir .. "/closes.txt"
    local status, out = util.run(("cc -shared -fPIC -O1 -o %s spec/support/closewho.c -ldl -lpthread"):format(so))
    assert.equal(0, status, out)
    status, out = util.run(("CLOSEWHO_FILE=%s LD_PRELOAD=\"${LD_PRELOAD:+$LD_PRELOAD:}%s\" lua5.4 spec/support/closewho_child.lua %s"):format(
      log, so, sbx.base("apimart")))
    assert.equal(0, status, out)
    assert.matches("ok", out)
    local by = {}
    local n = 0
    for line in io.lines(log) do
      by[line] = (by[line] or 0) + 1
      n = n + 1
    end
    -- a submit, a poll, three capped replies: a connection each at least, the last at close
    assert.is_true(n >= 4, n .. " sockets closed")
    assert.equal(n, by["pixflow-worker"], "closed by: " .. require("cjson").encode(by))
  end)

  local function threads()
    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("l"):match("^(%d+)")
    f:close()
    local found = {}
    local ls = assert(io.popen("ls /proc/" .. pid .. "/task"))
    for tid in ls:lines() do
      local s = io.open(("/proc/%s/task/%s/stat"):format(pid, tid))
      local line = s and s:read("l")
      if s then s:close() end
      local comm, rest = (line or ""):match("^%d+ %((.-)%) (.*)$")
      if comm then
        local fields = {}
        for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
        -- after the name: field 3 is fields[1]; nice is field 19, the policy field 41
        found[#found + 1] = { comm = comm, nice = tonumber(fields[17]), policy = tonumber(fields[39]),
                              main = tid == pid }
      end
    end
    ls:close()
    return found
  end

  it("is named pixflow-worker, 10 nice steps below the caller, and a batch thread #linux", function()
    if not io.open("/proc/self/stat") then pending("no /proc") return end
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  journal = dir .. "/w.db" })
    local t = assert(c:submit({ model = "v6", prompt = "worker" }, { output = dir .. "/w.mp4" }))
    local mine, worker
    for _, th in ipairs(threads()) do
      if th.comm == "pixflow-worker" then worker = th elseif th.main then mine = th end
    end
    assert.is_truthy(worker, "no pixflow-worker thread")
    assert.equal(math.min(19, mine.nice + 10), worker.nice)
    assert.equal(3, worker.policy)   -- SCHED_BATCH
    assert(t:wait{ timeout = 10 })
    c:close()
  end)
end)
