--- pixflow.fallback: the same request on one gateway after another. It moves to the next only
-- after a verified terminal failure: the generation failed, or the gateway refused the submit
-- outright (nothing was created). Never after a submit whose outcome is unknown (unconfirmed),
-- never on transport noise or a timeout (the task may still finish and be billed), and on
-- moderation only if asked (on_moderated = "next": moderation is the user's call).
local core = require "pixflow.core"
local errors = require "pixflow.errors"
local options = require "pixflow.options"

local M = {}
local Fallback = {}
local fallback_mt = { __name = "pixflow.Fallback", __index = Fallback }
local Attempt = {}
local attempt_mt = { __name = "pixflow.FallbackTask" }

local OPTS = { on_moderated = "string" }

--- pixflow.fallback(list, opts): list holds pixflow.new options (or clients), tried in order.
function M.new(new_client, list, opts)
  if type(list) ~= "table" or #list == 0 then
    options.fail("fallback", 1, 3, "a non-empty list of client options (or clients) expected")
  end
  opts = opts or {}
  options.check("fallback", 2, opts, OPTS, 2)
  if opts.on_moderated and opts.on_moderated ~= "stop" and opts.on_moderated ~= "next" then
    options.fail("fallback", 2, 3, "on_moderated must be 'stop' or 'next', got %q", opts.on_moderated)
  end
  return setmetatable({ specs = list, clients = {}, new_client = new_client,
                        on_moderated = opts.on_moderated or "stop" }, fallback_mt)
end

function Fallback:_client(i)
  local c = self.clients[i]
  if c then return c end
  local spec = self.specs[i]
  if type(spec) == "table" and spec._core then c = spec
  else
    local err
    c, err = self.new_client(spec)
    if not c then return nil, err end
  end
  self.clients[i] = c
  return c
end

-- Is this end a verified terminal failure that another gateway may fix?
local function moves_on(self, t)
  local st = t.status
  if st == "failed" then
    local k = t.error and t.error.kind
    -- a refused submit (auth, quota, invalid, rate limit) or a failed generation: nothing runs
    return k ~= "transport" or (t.error.message or ""):find("never reached", 1, true) ~= nil
  end
  return st == "moderated" and self.on_moderated == "next"
end

--- Submit req to the first gateway that takes it. Returns a task-like object (wait, download,
-- await, cancel; status, id, provider, error, attempts), or nil and the last error when every
-- gateway refused it before sending.
function Fallback:submit(req, opts)
  local a = setmetatable({ fallback = self, req = req, opts = opts, attempts = {}, index = 0,
                           problems = {} }, attempt_mt)
  local ok, err = a:_next()
  if not ok then return nil, err end
  return a
end

-- Move to the next gateway that accepts the request; false and the last error when none is left.
function Attempt:_next()
  local fb = self.fallback
  local last
  while self.index < #fb.specs do
    self.index = self.index + 1
    local c, cerr = fb:_client(self.index)
    if c then
      local t, err = c:submit(self.req, self.opts)
      if t then
        self.attempts[#self.attempts + 1] = t
        self.task, self.client = t, c
        return true
      end
      last = err
    else
      last = cerr
    end
    self.problems[#self.problems + 1] = last
  end
  return false, last
end

attempt_mt.__index = function(self, k)
  local m = Attempt[k]
  if m ~= nil then return m end
  local t = rawget(self, "task")
  return t and t[k]
end

--- Wait until a gateway succeeds, or the failures leave nothing to try.
function Attempt:wait(opts)
  opts = opts or {}
  options.check("wait", 1, opts, { timeout = "number", on_progress = "function" })
  local deadline = opts.timeout and core.now() + opts.timeout
  while true do
    local left = deadline and deadline - core.now()
    if left and left <= 0 then
      return nil, errors.new("timeout", "gave up waiting; the current task may still finish and be billed",
                             { provider = self.task.provider, task_id = self.task.id, code = "wait_timeout" })
    end
    local ok, err = self.task:wait{ timeout = left, on_progress = opts.on_progress }
    if ok then return true end
    if not moves_on(self.fallback, self.task) then return nil, err end
    if not self:_next() then return nil, err end
  end
end

function Attempt:await(opts)
  local wf = require "pixflow.workflow"
  if not wf.current() then return self:wait(opts) end
  while true do
    local ok, err = self.task:await(opts)
    if ok then return true end
    if not moves_on(self.fallback, self.task) then return nil, err end
    if not self:_next() then return nil, err end
  end
end

function Attempt:download(path, opts)
  local ok, err = self:wait{ timeout = opts and opts.timeout }
  if not ok then return nil, err end
  return self.task:download(path, opts)
end

function Attempt:cancel(opts)
  return self.task:cancel(opts)
end

--- Close every client the fallback made.
function Fallback:close()
  for i, c in pairs(self.clients) do
    if not (type(self.specs[i]) == "table" and self.specs[i]._core) then c:close() end
  end
end

return M
