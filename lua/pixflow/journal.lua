--- pixflow.journal: the append-only record of every task, so that nothing paid for is lost.
-- One JSON object per line, each made durable (fsync) before the call that wrote it returns:
--   intent     before the submit is sent: provider, base_url, model, the request, the output path
--   accepted   the gateway's task id, as soon as pixflow learns it
--   status     each terminal status (with the error)
--   download   a download started (to which path)
--   downloaded the file is complete at path
-- Records of one task share a `key` (a UUID made at submit). The journal holds no API key.
local core = require "pixflow.core"
local cjson = require "cjson"
local errors = require "pixflow.errors"

local M = {}
local Journal = {}
Journal.__index = Journal
M.VERSION = 1

--- The command-line tool's default journal: $XDG_STATE_HOME/pixflow/journal.jsonl.
function M.default_path()
  local state = os.getenv("XDG_STATE_HOME")
  if not state or state == "" then
    local home = os.getenv("HOME")
    state = (home and home ~= "" and home or ".") .. "/.local/state"
  end
  return state .. "/pixflow/journal.jsonl"
end

--- Open (create) a journal for appending. Returns a Journal, or nil and an io error.
function M.open(path)
  local fh, err = core.open_journal(path)
  if not fh then return nil, err end
  return setmetatable({ path = path, fh = fh }, Journal)
end

--- Append one record; it is on disk when this returns true.
function Journal:record(ev, key, fields)
  local rec = { v = M.VERSION, ev = ev, key = key, t = core.time() }
  for k, v in pairs(fields or {}) do rec[k] = v end
  local ok, line = pcall(cjson.encode, rec)
  if not ok then
    return nil, errors.new("io", ("cannot encode a journal record: %s"):format(line), { code = "journal" })
  end
  return self.fh:append(line)
end

function Journal:close()
  self.fh:close()
end

-- The error fields worth keeping.
function M.error_fields(err)
  if not err then return nil end
  return { kind = err.kind, message = err.message, code = err.code, status = err.status }
end

local TERMINAL = { succeeded = true, failed = true, moderated = true, canceled = true }
-- The type of every field a record may carry.
local FIELD_TYPES = { key = "string", ev = "string", t = "number", provider = "string",
  base_url = "string", model = "string", request = "table", output = "string", label = "string",
  id = "string", status = "string", error = "table", path = "string" }

--- Read a journal into its tasks, in the order they were first written. A damaged line (the
-- process died while writing it) is skipped and reported in warnings.
-- Returns tasks (a list of { key, provider, base_url, model, request, output, id, status, error,
-- path, downloaded, t }), warnings; or nil and an io error when the file cannot be read.
function M.read(path)
  local f, oerr = io.open(path, "rb")
  if not f then
    if oerr and oerr:find("No such file") then return {}, {} end
    return nil, errors.new("io", ("cannot read the journal %s: %s"):format(path, oerr), { code = "journal" })
  end
  local tasks, by_key, warnings = {}, {}, {}
  local n = 0
  for line in f:lines() do
    n = n + 1
    local ok, rec = pcall(cjson.decode, line)
    if ok and type(rec) == "table" then
      -- a hand edit or a foreign writer may put anything anywhere: a field of the wrong type is
      -- dropped (and reported), never trusted
      for field, want in pairs(FIELD_TYPES) do
        local v = rec[field]
        if v ~= nil and (type(v) ~= want or (want == "number" and (v ~= v or v == math.huge or v == -math.huge))) then
          rec[field] = nil
          warnings[#warnings + 1] = ("%s:%d: field %s is a %s, not a %s; ignored"):format(path, n, field, type(v), want)
        end
      end
    end
    if not ok or type(rec) ~= "table" or type(rec.key) ~= "string" or type(rec.ev) ~= "string" then
      if line ~= "" then
        warnings[#warnings + 1] = ("%s:%d is damaged (the process may have died while writing it); "
          .. "skipped"):format(path, n)
      end
    else
      local t = by_key[rec.key]
      if not t then
        t = { key = rec.key }
        by_key[rec.key] = t
        tasks[#tasks + 1] = t
      end
      if rec.ev == "intent" then
        t.provider, t.base_url, t.model, t.request, t.output, t.t, t.label =
          rec.provider, rec.base_url, rec.model, rec.request, rec.output, rec.t, rec.label
      elseif rec.ev == "accepted" then
        t.id = rec.id
      elseif rec.ev == "status" then
        t.status, t.error = rec.status, rec.error
        if rec.status == "not_created" then t.id = nil end
      elseif rec.ev == "download" then
        t.output = rec.path
      elseif rec.ev == "downloaded" then
        t.downloaded = rec.path
      end
    end
  end
  f:close()
  for _, t in ipairs(tasks) do
    -- what is left to do: nothing, poll (and download), or ask the user (no id)
    if t.status == "not_created" then
      t.state = "not_created"              -- settled through the gateway's task list: resubmittable
    elseif t.downloaded or (t.status and TERMINAL[t.status] and t.status ~= "succeeded")
       or (t.status == "succeeded" and not t.output) then
      t.state = "done"
    elseif t.status == "unconfirmed" or (not t.id and t.provider) then
      t.state = "unconfirmed"
    elseif t.id then
      t.state = "open"
    else
      t.state = "damaged"
    end
  end
  return tasks, warnings
end

--- Find unconfirmed submits at gateways that list their tasks (DashScope). For one gateway and
-- model, intents are ordered by time; when submits go one at a time (batch and the command make
-- them so), intent k+1 is written only after k's answer came or its process died, so a task the
-- gateway created after intent k and before intent k+1 can only be k's. So: an unconfirmed intent
-- with exactly one unclaimed task in that interval gets it; one whose interval is empty is "not
-- created" once a later intent exists (its process moved on or died) or grace seconds passed.
-- Two unconfirmed intents next to each other are left alone (nothing separates them), and so is
-- any interval with more than one candidate: pixflow never guesses which task is whose. The
-- gateway's clock is assumed to agree with ours [INFERENCE]. Records what it learns; returns how
-- many were settled. client_for(entry) gives a client for the entry's gateway (or nil).
function M.reconcile(path, entries, client_for, opts)
  opts = opts or {}
  local grace = opts.grace or 15
  local now = core.time()
  local claimed, groups = {}, {}
  for _, e in ipairs(entries) do
    if e.id then claimed[e.id] = true end
    if e.provider and e.t then
      local g = e.provider .. "|" .. tostring(e.base_url) .. "|" .. tostring(e.model)
      groups[g] = groups[g] or {}
      table.insert(groups[g], e)
    end
  end
  local settled, j = 0, nil
  for _, list in pairs(groups) do
    table.sort(list, function(a, b) return a.t < b.t end)
    local open = {}
    for k, e in ipairs(list) do
      if e.state == "unconfirmed" then
        local lonely = not (list[k - 1] and list[k - 1].state == "unconfirmed")
                   and not (list[k + 1] and list[k + 1].state == "unconfirmed")
        open[#open + 1] = { e = e, from = e.t, to = list[k + 1] and list[k + 1].t, lonely = lonely }
      end
    end
    local c = open[1] and client_for(open[1].e)
    local caps = c and require("pixflow.capabilities").get(open[1].e.provider, open[1].e.model)
    -- the list's time zone is not documented: ask wide, then filter on the tasks' own times
    local tasks = caps and c._core:_list(caps.gateway_model, open[1].from - 9 * 3600 - 60, now + 9 * 3600 + 60)
    for _, o in ipairs(tasks and open or {}) do
      local cands = {}
      for _, x in ipairs(tasks) do
        -- the list gives milliseconds, cut down: a task made within 1 ms of its intent may show
        -- the same millisecond
        if not claimed[x.id] and x.created > o.from - 0.001 and x.created <= (o.to or now) then
          cands[#cands + 1] = x
        end
      end
      if o.lonely then
        j = j or M.open(path)
        if #cands == 1 and j then
          claimed[cands[1].id] = true
          o.e.id, o.e.state = cands[1].id, "open"
          j:record("accepted", o.e.key, { id = cands[1].id, found = "task list" })
          settled = settled + 1
        elseif #cands == 0 and (o.to or now - o.from > grace) and j then
          o.e.state, o.e.status = "not_created", "not_created"
          j:record("status", o.e.key, { status = "not_created", error = { kind = "unconfirmed",
            message = "the gateway's task list has no task from this submit: it was never created, and nothing was charged" } })
          settled = settled + 1
        end
      end
      if o.e.state == "unconfirmed" and #cands > 0 then o.e.candidates = cands end
    end
  end
  if j then j:close() end
  return settled
end

return M
