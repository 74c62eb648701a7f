--- pixflow.errors: the one error type (pixflow.error), shared with the C core, and its wording.
-- Every runtime failure in pixflow is returned as nil, err where err is one of these: a table
-- with kind, message, status, code, provider, retryable (and task_id, problems, retry_after
-- when they apply), printed by tostring as one readable line that says what to do.
local core = require "pixflow.core"

local M = {}
local mt = core.error_mt
M.mt = mt

-- What the user can do about each kind. %s is the provider's key variable where it is used.
-- What to do, where the code says more than the kind (checked before HINTS).
local CODE_HINTS = {
  bad_output = "give a file path in a directory that can be written",
  output_taken = "choose another output path, or let the other task finish (a paid one is downloaded by `pixflow resume`); nothing was sent for this one",
  claimed = "leave it to that process (it follows the task), or stop that process and run resume again",
  journal = "check the journal's path, that its directory exists and is writable, and the free disk space",
  -- a wait that gave up (pixflow's own message says the task goes on and may be billed)
  wait_timeout = "wait again, or re-attach later with client:task(id)",
  -- a reference image written to while its upload read it (its content key no longer holds)
  changed = "submit again once the file is completely written",
}

-- Errors whose message already says what to do (the core writes the advice into it): nothing is
-- added to them, so that the advice is said once. A hint of the error's own (e.hint) still is.
local ADVISED_CODES = {
  task_timeout = true,         -- "the task may still finish at X and be billed. It stays in the journal ..."
  output_taken = true,         -- "... `pixflow resume` fetches it (or `pixflow forget` drops it); choose another ..."
  result_unavailable = true,   -- "... nothing was saved. Download again once it has succeeded"
}
local ADVISED_KINDS = {
  unconfirmed = true,          -- "... Check the gateway's task list before submitting again, to avoid paying twice"
}
M.ADVISED_CODES, M.ADVISED_KINDS = ADVISED_CODES, ADVISED_KINDS

local HINTS = {
  invalid = "fix the request; the gateway did not start a task",
  auth = "check the API key: pass api_key to pixflow.new or set %s",
  quota = "the account balance or quota is used up: top it up at the gateway, then submit again",
  rate_limit = "too many requests or tasks at once: wait and retry, or lower max_per_host",
  moderated = "the content was refused by moderation: change the prompt or the images",
  not_found = "the gateway does not know this task: check the id and the provider "
    .. "(gateways keep tasks for about 24 hours)",
  provider = "the gateway failed: retry later",
  failed = "the generation failed at the gateway: submit again, perhaps with another prompt or seed",
  transport = "check the network connection and base_url",
  timeout = "the task may still finish and be billed: wait again, or re-attach later with "
    .. "client:task(id)",
  protocol = "the gateway replied in a shape pixflow does not know: please report it with this message",
  io = "check the path, that its directory exists and is writable, and the free disk space",
  nomem = "the process ran out of memory",
  unconfirmed = "look for the task in the gateway's console or task list before submitting again",
}

local function key_env(provider)
  local ok, providers = pcall(require, "pixflow.providers")
  local p = ok and provider and providers.preset(provider)
  return p and p.key_env or "the provider's API key variable"
end

mt.__name = "pixflow.error"
mt.__tostring = function(e)
  local parts = { "[", tostring(e.kind), "] " }
  if e.provider then parts[#parts + 1] = e.provider .. ": " end
  parts[#parts + 1] = tostring(e.message)
  local extra = {}
  if e.status then extra[#extra + 1] = "HTTP " .. e.status end
  if e.code and e.code ~= "" and e.code ~= "http_error" then extra[#extra + 1] = e.code end
  if e.task_id then extra[#extra + 1] = "task " .. e.task_id end
  if #extra > 0 then parts[#parts + 1] = " (" .. table.concat(extra, ", ") .. ")" end
  local hint = e.hint
  if not hint and not (ADVISED_CODES[e.code] or ADVISED_KINDS[e.kind]) then
    hint = CODE_HINTS[e.code] or HINTS[e.kind]
  end
  if hint then
    if e.kind == "rate_limit" and e.retry_after then
      hint = ("the gateway asks to wait %g s before retrying"):format(e.retry_after)
    end
    parts[#parts + 1] = ". What to do: " .. hint:format(key_env(e.provider))
  end
  return table.concat(parts)
end

--- Make an error. fields may hold status, code, provider, retryable, task_id, problems, hint.
function M.new(kind, message, fields)
  local e = { kind = kind, message = message, retryable = false }
  if fields then for k, v in pairs(fields) do e[k] = v end end
  return setmetatable(e, mt)
end

--- Is v a pixflow error?
function M.is(v)
  return getmetatable(v) == mt
end

return M
