-- The pump's budget (issue 14): one poll does a bounded amount of work; what is left (due
-- timers, ended transfers) waits, in order, for the next poll, and nothing is lost or done twice.
-- No timing is asserted: with a budget far below what one completion costs, each poll handles
-- exactly the minimum (one item of each kind), which is a count, not a speed.
local pixflow = require "pixflow"
local sandbox = require "spec.support.sandbox"

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
    -- one poll(0) fires one due timer, not thirty
    c:poll(0)
    local polls = 0
    local most = 0
    local order = {}
    c:on_change(function(t) if t.status == "succeeded" then order[#order + 1] = t.id end end)
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
