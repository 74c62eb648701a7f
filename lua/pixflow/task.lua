--- pixflow.task: what a task does on its own (the methods of pixflow.Task, on top of the
-- core's): wait, await, cancel, start_download, download_state, download. Each wait goes through
-- pixflow.follow's loop; inside a workflow, await and download yield instead of blocking.
local core = require "pixflow.core"
local errors = require "pixflow.errors"
local options = require "pixflow.options"
local workflow = require "pixflow.workflow"
local follow = require "pixflow.follow"

local task = core.task_methods
local WAIT = { timeout = "number", on_progress = "function" }
local DOWNLOAD = { timeout = "number", on_progress = "function" }

-- The Lua client that pumps t (raises if t or its client is closed).
local function owner(t)
  return t:_owner()
end

task.await = workflow.await

local function timeout_error(t, seconds, what)
  return errors.new("timeout", ("gave up %s after %g s; task %s is %s at %s and may still finish "
    .. "and be billed"):format(what, seconds, tostring(t.id), t.status, t.provider),
    { provider = t.provider, task_id = t.id, retryable = true, code = "wait_timeout" })
end

--- Wait until the task ends. Blocks (pumping the client) for at most opts.timeout seconds
-- (default: until the task's own deadline, task_timeout, 30 minutes unless set). on_progress(task) runs on every change.
-- syntax: ok, err = task:wait{ timeout = 600, on_progress = fn }
-- Returns: true when it succeeded; nil and an error otherwise (failed, moderated, canceled,
-- unconfirmed, halted polling, or the timeout: the task is not lost, wait again).
function task:wait(opts)
  opts = opts or {}
  options.check("wait", 1, opts, WAIT)
  local c = owner(self)
  -- no timeout of its own: the task's deadline (task_timeout, in the core) ends the wait
  local timeout = opts.timeout or math.huge
  if self.halted then self:_resume() end
  local on_progress = opts.on_progress
  local seen_status, seen_progress, ended_at
  local function outcome()
    if self.status == "succeeded" then return true, true end
    if self.done or self.halted then return true, nil, self.error end
    return false
  end
  return follow.loop{ clients = { c }, slice = 1, deadline = core.now() + timeout,
    check = function()
      local status = self.status
      if on_progress and (status ~= seen_status or self.progress ~= seen_progress) then
        seen_status, seen_progress = status, self.progress
        on_progress(self)
      end
      local ended, ok, err = outcome()
      -- a wait that returns leaves the journal knowing the end: its record is written by the
      -- engine's worker, a few milliseconds later (10 s at most, then it is owed)
      if ended and self._journaling then
        ended_at = ended_at or core.now()
        if core.now() - ended_at < 10 then return false end
      end
      return ended, ok, err
    end,
    expired = function()
      local ended, ok, err = outcome()
      if ended then return ok, err end
      return nil, timeout_error(self, timeout, "waiting")
    end }
end

--- Ask the gateway to cancel the task (DashScope: only while it is queued). Waits for the
-- gateway's answer to the cancel (not for the task to end).
-- syntax: ok, err = task:cancel{ timeout = 30 }
-- Returns: true when the gateway accepted the cancel (the task then ends "canceled"); nil and an
-- error when it refused, or when the gateway has no cancel call (code "unsupported").
function task:cancel(opts)
  opts = opts or {}
  options.check("cancel", 1, opts, { timeout = "number" })
  local c = owner(self)
  local ok, err = self:_cancel()
  if not ok then return nil, err end
  return follow.loop{ clients = { c }, slice = 1, deadline = core.now() + (opts.timeout or 60),
    check = function()
      local state, cerr = self:_cancel_state()
      if state == "accepted" then return true, true end
      if state == "refused" then return true, nil, cerr end
      if self.done and state ~= "sent" then
        return true, nil, errors.new("invalid", ("the task ended (%s) before the cancel was sent"):format(self.status),
                                     { provider = self.provider, task_id = self.id, code = "finished" })
      end
      return false
    end,
    expired = function() return nil, timeout_error(self, opts.timeout or 60, "waiting for the cancel") end }
end

--- Start downloading the result to path without waiting (for loops that must not block):
-- poll the client, then read task.path (set when the file is complete) or task:download_state().
-- syntax: ok, err = task:start_download(path)
function task:start_download(path)
  if type(path) ~= "string" or path == "" then
    options.fail("start_download", 1, 2, "path (non-empty string) expected, got %s", type(path))
  end
  if self.status ~= "succeeded" then
    return nil, errors.new("invalid", ("task %s has no result yet (status %s)"):format(tostring(self.id), self.status),
                           { provider = self.provider, task_id = self.id, code = "not_ready" })
  end
  return owner(self):_start_download(self, path)
end

--- "none", "running", "done" or "failed" (with the error).
function task:download_state()
  return self:_download_state()
end

--- Download the result to path (through path .. ".part", renamed when complete and checked to
-- be an MP4). Waits for the task first if it has not finished.
-- syntax: path, err = task:download(path, { timeout = 600 })
function task:download(path, opts)
  if type(path) ~= "string" or path == "" then
    options.fail("download", 1, 2, "path (non-empty string) expected, got %s", type(path))
  end
  opts = opts or {}
  options.check("download", 2, opts, DOWNLOAD)
  local c = owner(self)
  local timeout = opts.timeout or math.huge
  local deadline = core.now() + timeout
  if self.status ~= "succeeded" then
    local ok, err = self:wait{ timeout = timeout, on_progress = opts.on_progress }
    if not ok then return nil, err end
  end
  local ok, err = c:_start_download(self, path)
  if not ok then return nil, err end
  if workflow.current() then
    -- inside a workflow the download runs while the flow yields
    local t = self
    local dl_ok, dl_err = coroutine.yield{ tasks = { t },
      ready = function() local s = t:_download_state() return s ~= "running" end,
      result = function()
        local s, e = t:_download_state()
        if s == "done" then return path end
        return nil, e
      end }
    return dl_ok, dl_err
  end
  return follow.loop{ clients = { c }, slice = 1, deadline = deadline,
    check = function()
      local state, derr = self:_download_state()
      if state == "done" then return true, path end
      if state == "failed" then return true, nil, derr end
      return false
    end,
    expired = function()
      self:_download_abort()
      return nil, timeout_error(self, timeout, "downloading")
    end }
end

return task
