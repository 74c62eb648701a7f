--- pixflow.workflow: workflows as coroutines. Inside one, task:await() yields instead of blocking,
-- and pixflow.all / pixflow.race compose tasks. A flow runs to the end with pixflow.run(fn), or
-- one step at a time (flow:step(), or any client:poll(0) of a client it waits on), so a game loop
-- never blocks. Outside a flow the same calls block through task:wait.
local core = require "pixflow.core"
local errors = require "pixflow.errors"
local options = require "pixflow.options"

local follow = require "pixflow.follow"

local M = {}
local Flow = {}
local flow_mt = { __name = "pixflow.Flow", __index = Flow }

-- coroutine -> the flow it runs (weak: a finished flow goes away with its coroutine)
local running = setmetatable({}, { __mode = "k" })

--- The flow of the running coroutine, or nil.
function M.current()
  local co = coroutine.running()
  return co and running[co]
end

--- A flow for fn(...), not started: call step() (or poll a client it waits on) to run it.
function M.new_flow(fn, ...)
  if type(fn) ~= "function" then options.fail("new_flow", 1, 2, "function expected, got %s", type(fn)) end
  local self = setmetatable({ co = coroutine.create(fn), args = table.pack(...), done = false,
                              clients = {} }, flow_mt)
  running[self.co] = self
  return self
end

-- Register the clients of tasks so a step pumps them, and so they step this flow.
local function watch(self, tasks)
  for _, t in ipairs(tasks) do
    local c = t:_owner()
    if not self.clients[c] then
      self.clients[c] = true
      c._flows[self] = true
    end
  end
end

-- Resume the coroutine if what it waits for is ready. Returns true when the flow has ended.
function Flow:_advance()
  if self.done then return true end
  local values
  local w = self.waiting
  if w then
    if not w.ready() then
      if not (w.deadline and core.now() >= w.deadline) then return false end
      values = table.pack(nil, w.timeout_error())
    else
      values = table.pack(w.result())
    end
  else
    values = self.args
  end
  self.waiting = nil
  local res = table.pack(coroutine.resume(self.co, table.unpack(values, 1, values.n)))
  if not res[1] then
    self.done = true
    self.results = table.pack(nil, errors.new("failed", debug.traceback(self.co, tostring(res[2])),
                                              { code = "workflow_error" }))
  elseif coroutine.status(self.co) == "dead" then
    self.done = true
    self.results = table.pack(table.unpack(res, 2, res.n))
  else
    local waiter = res[2]
    if type(waiter) ~= "table" or not waiter.ready then
      self.done = true
      self.results = table.pack(nil, errors.new("failed",
        "a workflow yielded something other than a pixflow wait (use task:await, pixflow.all or pixflow.race)",
        { code = "workflow_error" }))
    else
      self.waiting = waiter
      watch(self, waiter.tasks)
      -- it may be ready at once (the tasks were done already)
      return self:_advance()
    end
  end
  if self.done then
    for c in pairs(self.clients) do c._flows[self] = nil end
  end
  return self.done
end

--- Run one step without blocking: pump the clients it waits on (poll(0)), and resume it if it can
-- go on. Returns true when the flow has ended.
function Flow:step()
  for c in pairs(self.clients) do c:_pump(0) end
  return self:_advance()
end

--- The flow's results once it ended (fn's return values, or nil and an error).
function Flow:result()
  if not self.done then return nil, errors.new("invalid", "the workflow has not ended", { code = "not_done" }) end
  return table.unpack(self.results, 1, self.results.n)
end

--- Block until the flow ends (at most timeout seconds); returns its results.
function Flow:wait(timeout)
  -- each round is a step (every client pumped without waiting); then one client waits a little
  return follow.loop{ slice = 0.1, flows = false, deadline = timeout and core.now() + timeout,
    clients = function()
      local any = next(self.clients)
      return { any }
    end,
    check = function()
      if self:step() then return true, self:result() end
      return false
    end,
    expired = function()
      return nil, errors.new("timeout", ("the workflow did not end within %g s; its tasks go on and may be billed"):format(timeout),
                             { code = "wait_timeout", retryable = true })
    end }
end

--- Run fn(...) as a workflow to its end; returns what fn returns (or nil and an error if it raised,
-- with the coroutine's traceback).
function M.run(fn, ...)
  local flow = M.new_flow(fn, ...)
  return flow:wait()
end

-- A waiter for tasks: ready(), result(), the tasks, and an optional deadline.
local function waiter(tasks, ready, result, timeout)
  local w = { tasks = tasks, ready = ready, result = result }
  if timeout then
    w.deadline = core.now() + timeout
    w.timeout_error = function()
      return errors.new("timeout", ("gave up waiting after %g s; the tasks go on and may be billed"):format(timeout),
                        { code = "wait_timeout", retryable = true })
    end
  end
  return w
end

local function ended(t)
  return t.done or t.halted
end

local function outcome(t)
  if t.status == "succeeded" then return true end
  return nil, t.error
end

-- Wait for w: yield inside a flow, else pump the tasks' clients until ready (the first task's
-- client waits, and steps the flows waiting on it).
local function block_or_yield(w)
  if M.current() then return coroutine.yield(w) end
  return follow.loop{ slice = 0.1, flows = "first", deadline = w.deadline,
    clients = function()
      local list, seen = {}, {}
      for _, t in ipairs(w.tasks) do
        local o = t:_owner()
        if not seen[o] then seen[o] = true; list[#list + 1] = o end
      end
      return list
    end,
    check = function()
      if w.ready() then return true, w.result() end
      return false
    end,
    expired = function() return nil, w.timeout_error() end }
end

--- task:await{ timeout = } -> true | nil, err: yields inside a workflow, blocks outside one.
function M.await(task, opts)
  opts = opts or {}
  options.check("await", 1, opts, { timeout = "number" })
  if task.halted then task:_resume() end
  if not M.current() then return task:wait{ timeout = opts.timeout } end
  return coroutine.yield(waiter({ task }, function() return ended(task) end,
                                function() return outcome(task) end, opts.timeout))
end

--- pixflow.all{ t1, t2, ... } -> true | nil, err, failed_task: waits until every task ended;
-- fails with the first failure found (the others still end on their own).
function M.all(tasks, opts)
  options.check("all", 2, opts or {}, { timeout = "number" })
  if type(tasks) ~= "table" or #tasks == 0 then options.fail("all", 1, 2, "a non-empty list of tasks expected") end
  for _, t in ipairs(tasks) do if t.halted then t:_resume() end end
  return block_or_yield(waiter(tasks, function()
    for _, t in ipairs(tasks) do
      if not ended(t) then
        return false
      end
      if t.status ~= "succeeded" then return true end   -- a failure decides it
    end
    return true
  end, function()
    for _, t in ipairs(tasks) do
      if ended(t) and t.status ~= "succeeded" then return nil, t.error, t end
    end
    return true
  end, opts and opts.timeout))
end

--- pixflow.race{ t1, t2, ... } -> task: waits until the first task ends, and returns it.
function M.race(tasks, opts)
  options.check("race", 2, opts or {}, { timeout = "number" })
  if type(tasks) ~= "table" or #tasks == 0 then options.fail("race", 1, 2, "a non-empty list of tasks expected") end
  return block_or_yield(waiter(tasks, function()
    for _, t in ipairs(tasks) do if ended(t) then return true end end
    return false
  end, function()
    for _, t in ipairs(tasks) do if ended(t) then return t end end
  end, opts and opts.timeout))
end

return M
