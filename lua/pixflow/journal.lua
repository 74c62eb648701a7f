--- pixflow.journal: the durable record of every task, so that nothing paid for is lost.
-- The journal is a SQLite database (csrc/journal.c), written from C as each thing happens:
--   intent     before anything of the task is sent (synced to disk): provider, base_url, model,
--              the request, the absolute output path, and its stage ("uploading": nothing has
--              left yet; "sending": the submit may have left)
--   sending    the uploads are done and the submit is about to leave (synced)
--   accepted   the gateway's task id, as soon as pixflow learns it
--   status     each terminal status (with the error)
--   download   a download started (to which absolute path)
--   downloaded the file is complete at path
-- Records of one task share a `key` (a UUID made at submit). The journal holds no API key.
-- Each task and each output path has at most one live owner across every process: a client (or
-- a batch, or a resume) that follows a task holds its claim until it ends or is closed; the claim
-- of a process that died is taken over by the next one that asks (journal.c says how liveness
-- is known). A JSONL journal of an earlier pixflow beside the database is imported once.
local core = require "pixflow.core"
local cjson = require "cjson"
require "pixflow.errors"            -- the errors it returns print with what to do

local M = {}
local Journal = {}
Journal.__index = Journal
Journal.__name = "pixflow.journal"
M.VERSION = 2

--- The command-line tool's default journal: $XDG_STATE_HOME/pixflow/journal.db.
function M.default_path()
  local state = os.getenv("XDG_STATE_HOME")
  if not state or state == "" then
    local home = os.getenv("HOME")
    state = (home and home ~= "" and home or ".") .. "/.local/state"
  end
  return state .. "/pixflow/journal.db"
end

--- The database a journal path names, and the JSONL journal of an earlier pixflow to import
-- from: "x.jsonl" (the old default's name) is kept in "x.db"; "x.db" imports "x.jsonl".
function M.paths(path)
  if path:find("%.jsonl$") then return (path:gsub("%.jsonl$", ".db")), path end
  if path:find("%.db$") then return path, (path:gsub("%.db$", ".jsonl")) end
  return path, nil
end

--- Open (create) a journal. Returns a Journal, or nil and an io error naming the path.
function M.open(path)
  local db, legacy = M.paths(path)
  local h, warnings = core.open_journal(db, legacy)
  if not h then return nil, warnings end
  return setmetatable({ path = db, _h = h, warnings = warnings }, Journal)
end

--- Is v an open Journal?
function M.is(v)
  return getmetatable(v) == Journal
end

-- Fields to JSON: a value JSON cannot hold (NaN, a function) is dropped, never an error.
local function encode(fields)
  local ok, s = pcall(cjson.encode, fields)
  if ok then return s end
  local clean = {}
  for k, v in pairs(fields) do
    if type(v) ~= "number" or (v == v and v ~= math.huge and v ~= -math.huge) then
      if pcall(cjson.encode, { v }) then clean[k] = v end
    end
  end
  return cjson.encode(clean)
end

--- Write one record; it is in the database when this returns true (intents are on disk).
-- fields.t (Unix seconds) overrides the time; an "intent" takes fields.stage.
function Journal:record(ev, key, fields)
  fields = fields or {}
  local t = fields.t or core.time()
  local rest = {}
  for k, v in pairs(fields) do if k ~= "t" and k ~= "stage" then rest[k] = v end end
  if ev == "intent" then
    return self._h:intent(key, t, encode(rest), fields.stage or "sending")
  end
  return self._h:record(key, ev, t, next(rest) and encode(rest) or nil)
end

--- Claim a resource ("task:<key>", "output:<absolute path>") for this journal handle: "taken",
-- "mine", or "held" and the holder's pid; nil and an error when the journal cannot be written.
function Journal:claim(what)
  return self._h:claim(what)
end

--- Claim every name of a list in one transaction: { {how, pid}, ... } in the list's order, or
-- nil, err with nothing claimed. Two runs claiming one list at once never split it.
function Journal:claim_all(list)
  return self._h:claim_all(list)
end

function Journal:unclaim(what)
  return self._h:unclaim(what)
end

-- What is left to do for one task: nothing, poll (and download), or ask the user.
local TERMINAL = { succeeded = true, failed = true, moderated = true, canceled = true }
local function state_of(t)
  local owner = t.owner
  local live = owner and owner.alive
  if t.status == "not_created" then return "not_created" end   -- settled by the task list
  if t.status == "not_sent" then return "not_sent" end         -- killed before the submit left
  if t.status == "forgotten" then return "done" end
  if t.downloaded or (t.status and TERMINAL[t.status] and t.status ~= "succeeded")
     or (t.status == "succeeded" and not t.output) then
    return "done"
  end
  if live and not owner.mine then return "claimed" end           -- another process follows it
  if t.status == "unconfirmed" then return "unconfirmed" end
  if not t.id and t.provider then
    if live then return "claimed" end                            -- still being submitted here
    if t.stage == "uploading" then return "not_sent" end
    return "unconfirmed"
  end
  if t.id and t.provider and t.base_url then return "open" end
  return "damaged"
end
M.state_of = state_of

--- Every task of the journal, in the order they were submitted, each with `state`: "done",
-- "open" (poll and download), "claimed" (a live process follows it), "unconfirmed" (sent, answer
-- unknown), "not_sent" / "not_created" (nothing was charged: it can run again), "damaged".
function Journal:tasks()
  local rows, err = self._h:tasks()
  if not rows then return nil, err end
  for _, t in ipairs(rows) do t.state = state_of(t) end
  return rows
end

--- Every record, oldest first (the JSONL journal's lines, as they were).
function Journal:events()
  return self._h:events()
end

function Journal:close()
  self._h:close()
end
Journal.__close = Journal.close

-- The error fields worth keeping.
function M.error_fields(err)
  if not err then return nil end
  return { kind = err.kind, message = err.message, code = err.code, status = err.status }
end

--- Read a journal into its tasks. Returns tasks, warnings (what the one-time import of an old
-- JSONL journal skipped); or nil and an io error when it cannot be opened.
function M.read(path)
  local j, err = M.open(path)
  if not j then return nil, err end
  local tasks, terr = j:tasks()
  local warnings = j.warnings
  j:close()
  if not tasks then return nil, terr end
  return tasks, warnings
end

-- seconds a gateway's task list is trusted to still show a task it made
local LIST_KEEPS = 23 * 3600

--- Settle unconfirmed submits at gateways that list their tasks (DashScope). For one gateway
-- and model, intents are ordered by time; when submits go one at a time (batch and the command
-- make them so), intent k+1 is written only after k's answer came or its process died, so a task
-- the gateway created after intent k and before intent k+1 can only be k's. The decision is the
-- engine's one matcher (csrc/reconcile.c, also used by a live client): a complete list with
-- exactly one unclaimed task in the window adopts it; a complete list with none, once the window
-- is closed (a later intent exists, or grace seconds passed) and the submit under a day old (the
-- list may drop older tasks: LIST_KEEPS), means never created; anything else
-- (a neighbouring unconfirmed intent, several candidates, a list that could not be read to its
-- end) is left alone: pixflow never guesses. The gateway's clock is assumed to agree with ours
-- [INFERENCE]. Records what it learns in j; returns how many were settled.
-- client_for(entry) gives a client for the entry's gateway (or nil).
function M.reconcile(j, entries, client_for, opts)
  opts = opts or {}
  local grace = opts.grace or 15
  local now = core.time()
  local owned, groups = {}, {}
  for _, e in ipairs(entries) do
    if e.id then owned[e.id] = true end
    if e.provider and e.t then
      local g = e.provider .. "|" .. tostring(e.base_url) .. "|" .. tostring(e.model)
      groups[g] = groups[g] or {}
      table.insert(groups[g], e)
    end
  end
  local settled = 0
  for _, list in pairs(groups) do
    table.sort(list, function(a, b) return a.t < b.t end)
    -- submits of this gateway account and model whose answer is unknown (unconfirmed, or still
    -- in flight in a live process), each with its window (to the next intent): a task in a
    -- rival's window may be that rival's
    local unanswered = {}
    for k, e in ipairs(list) do
      if not e.id and (e.state == "unconfirmed" or e.state == "claimed") then
        -- its task, if any, was made before its next intent, and before it was given up
        local to = list[k + 1] and list[k + 1].t or now
        if e.status == "unconfirmed" and e.updated and e.updated < to then to = e.updated end
        unanswered[#unanswered + 1] = { e = e, from = e.t, to = to }
      end
    end
    local open = {}
    for k, e in ipairs(list) do
      if e.state == "unconfirmed" then
        local rivals = {}
        for _, r in ipairs(unanswered) do
          if r.e ~= e then rivals[#rivals + 1] = { from = r.from, to = r.to } end
        end
        open[#open + 1] = { e = e, from = e.t, to = list[k + 1] and list[k + 1].t, rivals = rivals }
      end
    end
    local c = open[1] and client_for(open[1].e)
    local caps = c and require("pixflow.capabilities").get(open[1].e.provider, open[1].e.model)
    local tasks, complete, clock
    if caps and c._core._list then
      tasks, complete, clock = c._core:_list(caps.gateway_model, open[1].from, now)
    end
    for _, o in ipairs(tasks and open or {}) do
      -- DashScope keeps a task about 24 hours (its id is valid that long, providers.md 5.2): a
      -- list read later may no longer show one this submit made, so it says nothing of an
      -- older submit's "never created" [INFERENCE: how long the list shows a task is NOT FOUND]
      local closed = (o.to ~= nil or now - o.from > grace) and now - o.from < LIST_KEEPS
      local verdict, a, b = core.match_unconfirmed(tasks, { from = o.from, to = o.to or now, skew = 2,
        complete = complete, closed = closed, rivals = o.rivals, clock = clock }, owned)
      if verdict == "found" then
        local ok = j:record("accepted", o.e.key, { id = a, found = "task list" })
        if ok then
          owned[a] = true
          o.e.id, o.e.state = a, "open"
          settled = settled + 1
        end
      elseif verdict == "none" then
        local ok = j:record("status", o.e.key, { status = "not_created", error = { kind = "unconfirmed",
          message = "the gateway's task list has no task from this submit: it was never created, and nothing was charged" } })
        if ok then
          o.e.state, o.e.status = "not_created", "not_created"
          settled = settled + 1
        end
      else
        local cands = {}
        for _, x in ipairs(tasks) do
          if not owned[x.id] and (x.created < 0 or (x.created >= o.from - 2 and x.created <= (o.to or now) + 2)) then
            cands[#cands + 1] = x
          end
        end
        if #cands > 0 then o.e.candidates = cands end
        if not complete then o.e.list_incomplete = true end
      end
    end
  end
  return settled
end

--- Record that a task whose process died while uploading never sent its submit (its stage is
-- "uploading" and its owner is gone): it cost nothing and may run again.
function M.settle_unsent(j, entries)
  local n = 0
  for _, e in ipairs(entries) do
    if e.state == "not_sent" and e.status ~= "not_sent" then
      local ok = j:record("status", e.key, { status = "not_sent", error = { kind = "canceled",
        message = "the process ended while uploading the task's images, before its submit was sent: nothing was charged" } })
      if ok then
        e.status = "not_sent"
        n = n + 1
      end
    end
  end
  return n
end

return M
