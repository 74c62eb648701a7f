--- pixflow.defaults: the one table of every client option's default and allowed range.
-- pixflow.new resolves each option from the user's table, else the gateway's preset
-- (lua/pixflow/providers.lua, which holds only what differs per gateway), else the default here;
-- checks it against the range here, naming the field the way the user writes it
-- ("poll.backoff"); and passes complete values to the core (csrc/client.c), which has no
-- defaults of its own and only asserts that each value is one it can hold safely.
local options = require "pixflow.options"

local M = {}

-- field: where the user writes it (several: the first one given wins); core: the core's name;
-- integer: whole numbers only. Seconds unless the name says bytes, a count or a factor.
M.OPTIONS = {
  -- every request's limits (libcurl's)
  { field = { "timeouts.connect" }, core = "connect_timeout", default = 10, min = 0.001, max = 3600 },
  { field = { "timeouts.request" }, core = "request_timeout", default = 60, min = 0.001, max = 86400 },
  { field = { "timeouts.download" }, core = "download_timeout", default = 3600, min = 0.001, max = 7 * 86400 },
  { field = { "timeouts.low_speed_bytes" }, core = "low_speed_bytes", default = 1, min = 0, max = 1e9, integer = true },
  { field = { "timeouts.low_speed_time" }, core = "low_speed_time", default = 30, min = 0, max = 86400, integer = true },
  { field = { "max_body_bytes" }, core = "max_body_bytes", default = 8 * 1024 * 1024, min = 1024, max = 1e10, integer = true },
  { field = { "max_download_bytes" }, core = "max_download_bytes", default = 4 * 1024 * 1024 * 1024, min = 8,
    max = 1e15, integer = true },
  { field = { "max_per_host" }, core = "max_per_host", default = 8, min = 1, max = 1024, integer = true },
  -- status polls (csrc/task.c next_poll_delay, rate_admit)
  { field = { "poll.initial" }, core = "poll_initial", default = 5, min = 0, max = 86400 },
  { field = { "poll.interval" }, core = "poll_interval", default = 5, min = 0.001, max = 86400 },
  { field = { "poll.max" }, core = "poll_max", default = 30, min = 0.001, max = 86400 },
  { field = { "poll.backoff" }, core = "poll_backoff", default = 1.5, min = 1, max = 10 },
  { field = { "poll.jitter" }, core = "poll_jitter", default = 0.2, min = 0, max = 1 },
  { field = { "poll.min" }, core = "poll_min", default = 1, min = 0.001, max = 86400 },
  { field = { "poll.rate" }, core = "poll_rate", default = 0, min = 0, max = 1e6 },
  { field = { "poll.adaptive" }, core = "poll_adaptive", default = true, boolean = true },
  -- where the gateway lists its tasks (DashScope): one list query a round for every task in
  -- flight, a task's own status read only when the list shows it changed (csrc/engine/listpoll.c)
  { field = { "poll.list" }, core = "poll_list", default = true, boolean = true },
  { field = { "retry.poll_failures", "poll.max_failures" }, core = "max_poll_failures", default = 8, min = 1,
    max = 1000, integer = true },
  -- the retry policy (csrc/retry.c)
  { field = { "download_attempts", "retry.download_attempts" }, core = "download_attempts", default = 5, min = 1,
    max = 100, integer = true },
  { field = { "retry.upload_attempts" }, core = "upload_attempts", default = 4, min = 1, max = 100, integer = true },
  { field = { "retry.submit_attempts" }, core = "submit_attempts", default = 4, min = 1, max = 100, integer = true },
  { field = { "retry.base" }, core = "retry_base", default = 1, min = 0.001, max = 3600 },
  { field = { "retry.max" }, core = "retry_max", default = 60, min = 0.001, max = 86400 },
  { field = { "retry.after_max" }, core = "retry_after_max", default = 300, min = 0, max = 86400 },
  { field = { "retry.lookup_delay" }, core = "lookup_delay", default = 2, min = 0, max = 3600 },
  { field = { "retry.lookup_attempts" }, core = "lookup_attempts", default = 3, min = 1, max = 100, integer = true },
  -- each task's deadline: queue, generation and download together (0: none); a table by model
  -- name is checked value by value, its `default` (or this) is the client's
  { field = { "task_timeout" }, core = "task_timeout", default = 1800, min = 0, max = 30 * 86400 },
  -- the work one poll may do (seconds): what is left (timers, ended transfers, owed journal
  -- records) waits, in order, for the next poll; at least one of each is done per poll. 0.3 ms:
  -- W5's download rows' longest pumps went from 0.9-1.1 ms at 0.5 ms to 0.55-0.67 ms, leaving room
  -- for a preemption under 1 ms, at the cost of poll(0)-a-frame downloads (70-90 MB/s to 50-70)
  { field = { "budget" }, core = "budget", default = 0.0003, min = 0.00001, max = 10 },
}

local BY_CORE = {}
for _, o in ipairs(M.OPTIONS) do BY_CORE[o.core] = o end
M.by_core = BY_CORE

-- t's value at a dotted path ("poll.backoff"), or nil.
local function at(t, path)
  local v = t
  for k in path:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    v = v[k]
  end
  return v
end

local function bound(v)
  if v >= 1e6 and v == math.floor(v) then return ("%.0f"):format(v) end
  return ("%.10g"):format(v)
end

-- "from 1 to 10" (and "a whole number" first where it must be one)
local function range_text(o)
  return ("%sfrom %s to %s"):format(o.integer and "a whole number " or "", bound(o.min), bound(o.max))
end
M.range_text = range_text

-- Is v allowed for o? Returns true, or false and what is wrong.
local function fits(o, v)
  if o.boolean then return type(v) == "boolean", "must be true or false" end
  if type(v) ~= "number" or v ~= v then return false, "must be a number " .. range_text(o) end
  if v < o.min or v > o.max or (o.integer and v ~= math.floor(v)) then
    return false, "must be " .. range_text(o)
  end
  return true
end

local function shown(v)
  if type(v) == "number" then return bound(v) end
  if type(v) == "string" then return ("%q"):format(v) end
  return tostring(v)
end

--- The core's options for a client: every number and switch of M.OPTIONS, from opts (the
-- user's table, config-file defaults merged in), else preset (the gateway's), else the default,
-- each checked. A value out of range raises "bad argument #1 to 'new' (field 'poll.backoff'
-- must be from 1 to 10, got 20)" at level (2: the caller of the function that calls resolve).
-- where names the preset in messages about its own values.
function M.resolve(opts, preset, level, where)
  level = (level or 2) + 1
  local out = {}
  for _, o in ipairs(M.OPTIONS) do
    local v, from
    for _, f in ipairs(o.field) do
      if at(opts, f) ~= nil then v, from = at(opts, f), ("field '%s'"):format(f) break end
    end
    if v == nil then
      for _, f in ipairs(o.field) do
        if at(preset, f) ~= nil then
          v, from = at(preset, f), ("%s's preset value %s"):format(where or "the provider", f)
          break
        end
      end
    end
    if v == nil then v = o.default end
    if o.core == "task_timeout" and type(v) == "table" then
      -- seconds by model name: each is a deadline; `default` (else the preset's) is the client's
      for k, tv in pairs(v) do
        local ok, why = fits(o, tv)
        if not ok then
          options.fail("new", 1, level, "field 'task_timeout.%s' %s, got %s", tostring(k), why, shown(tv))
        end
      end
      v = v.default or at(preset, "task_timeout") or o.default
    end
    local ok, why = fits(o, v)
    if not ok then options.fail("new", 1, level, "%s %s, got %s", from, why, shown(v)) end
    out[o.core] = v
  end
  -- what follows from the others. poll.max bounds every wait between two polls: an interval
  -- above it is the user's contradiction when the user gave both (raised), else the value the
  -- user gave wins (a preset's or default interval comes down to the user's max; a preset's or
  -- default max goes up to the user's interval, or to the preset's). The first poll waits no
  -- longer than poll.max either, unless poll.initial is the user's own. A user who polls every
  -- 0.1 s expects hinted polls no further apart than that (poll.min).
  if out.poll_max < out.poll_interval then
    local user_interval, user_max = at(opts, "poll.interval") ~= nil, at(opts, "poll.max") ~= nil
    if user_interval and user_max then
      options.fail("new", 1, level, "field 'poll.interval' (%s) must not exceed field 'poll.max' (%s): "
        .. "poll.max bounds every wait between two polls", bound(out.poll_interval), bound(out.poll_max))
    elseif user_max then
      out.poll_interval = out.poll_max
    else
      out.poll_max = out.poll_interval
    end
  end
  if out.poll_initial > out.poll_max and at(opts, "poll.initial") == nil then out.poll_initial = out.poll_max end
  if out.poll_min > out.poll_interval then out.poll_min = out.poll_interval end
  return out
end

return M
