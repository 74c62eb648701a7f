--- pixflow.resume: finish what a journal's earlier runs left, never submitting anything.
-- Each unfinished task is re-attached with the gateway, base URL and model recorded at submit,
-- polled, and downloaded to its recorded (absolute) path. A task that a live process follows
-- (its journal claim) is left to that process; a dead process's claim is taken over.
local core = require "pixflow.core"
local journal = require "pixflow.journal"
local options = require "pixflow.options"
local follow = require "pixflow.follow"

local M = {}

local RESUME = { journal = { "string", "table" }, keys = "table", timeout = "number", download = "boolean",
                 poll = "table", on_event = "function", timeouts = "table", client = "table",
                 sandbox = "table" }

--- The key for a client of provider at base_url: the caller's, else (nil) the provider's
-- variable; a base URL under a local sandbox (opts.sandbox = { url =, key = }) whose variable is
-- unset gets the sandbox's placeholder (the sandbox takes any key; a real gateway never sees it).
function M.key_for(opts, provider, base_url)
  local key = opts.keys and opts.keys[provider]
  if key then return key end
  local sb = opts.sandbox
  if sb and type(base_url) == "string" and base_url:sub(1, #sb.url + 1) == sb.url .. "/" then
    local preset = require("pixflow.providers").preset(provider)
    local env = preset and os.getenv(preset.key_env)
    if not env or env == "" then return sb.key end
  end
  return nil
end

-- Is path a complete MP4 written after t (a file is renamed into place only when complete; one
-- older than the task is another task's)?
local function written_after(path, t)
  local st = core.stat(path)
  if not st or st.type ~= "file" or st.size < 8 then return false end
  if t and st.mtime + 2 < t then return false end
  local f = io.open(path, "rb")
  if not f then return false end
  local head = f:read(8)
  f:close()
  return head ~= nil and #head == 8 and head:sub(5, 8) == "ftyp"
end
M.written_after = written_after

local function when(t)
  if type(t) ~= "number" or t ~= t or t < 0 or t > 32503680000 then return "an unknown time" end
  return os.date("!%Y-%m-%d %H:%M:%S UTC", math.floor(t))
end

--- Run it. new(opts) makes a client (pixflow.new). Returns a report { tasks = { {key,
-- provider, id, status, path, error, state, action} }, warnings = {...}, journal = path }, or
-- nil and an io error when the journal cannot be read.
function M.run(new, opts)
  opts = opts or {}
  options.check("resume", 1, opts, RESUME)
  -- clients closed a moment ago may still be giving their tasks back (their workers write the
  -- last records and release the claims): what they left is resumed, not seen as taken
  core.drain(10)
  local own = opts.client          -- a client of the caller's, used for its provider and base URL
  local j, jerr
  if own and own._journal then
    j = own._journal                -- the client's own claims are this resume's
  elseif journal.is(opts.journal) then
    j = opts.journal
  else
    j, jerr = journal.open(opts.journal or journal.default_path())
    if not j then return nil, jerr end
  end
  local close_journal = j ~= opts.journal and not (own and own._journal == j)
  local entries, terr = j:tasks()
  if not entries then
    if close_journal then j:close() end
    return nil, terr
  end
  local report = { tasks = {}, warnings = j.warnings or {}, journal = j.path }
  local clients, pending = {}, {}
  local function emit(ev) if opts.on_event then opts.on_event(ev) end end
  -- every client this resume makes is pumped while it follows the tasks
  local follower = follow.new{ slice = 0.25,
    on_update = function(item, ended)
      if not ended then return end
      local t, row = item.task, item.row
      row.status, row.error = item.status, item.error
      if item.status == "downloaded" then row.path = item.path end
      if item.failed_download then
        row.action = "the video was not saved: run resume again to retry the download"
      elseif item.status == "claimed" then
        -- another process took it between our read and our claim
        row.status, row.state, row.action, row.error = "running", "claimed", tostring(item.error), nil
        emit{ event = "claimed", key = row.key, provider = row.provider, id = t.id, message = row.action }
        return
      end
      row.id = t.id
      emit{ event = "finished", key = row.key, provider = row.provider, id = t.id, status = row.status,
            path = row.status == "downloaded" and row.path or nil, error = row.error and tostring(row.error) }
    end }
  if own then
    clients[own.provider .. "|" .. own.base_url] = own
    follower:watch(own)
  end
  local why = {}                   -- provider|base_url -> why no client could be made
  local function client_for(e)
    if type(e.provider) ~= "string" or type(e.base_url) ~= "string" then return nil end
    local ck = e.provider .. "|" .. e.base_url
    if clients[ck] == nil then
      -- a row the journal holds may name a provider this pixflow does not know (a hand edit, a
      -- preset from a config file that is gone): that row is reported, the others go on
      local ok, c, cerr = pcall(new, { provider = e.provider, base_url = e.base_url,
                                       api_key = M.key_for(opts, e.provider, e.base_url),
                                       journal = j, poll = opts.poll, timeouts = opts.timeouts })
      clients[ck] = ok and c or false
      if ok and c then follower:watch(c) end
      why[ck] = not ok and c or cerr
    end
    return clients[ck] or nil, why[ck]
  end
  for _, w in ipairs(report.warnings) do emit{ event = "warning", message = w } end
  -- a process killed while uploading never sent its submit: say so (it can run again)
  journal.settle_unsent(j, entries)
  -- submits whose answer was never recorded: ask the gateways that list their tasks
  journal.reconcile(j, entries, client_for)
  for _, e in ipairs(entries) do
    local row = { key = e.key, provider = e.provider, id = e.id, status = e.status or "unknown",
                  path = e.downloaded or e.output, state = e.state, label = e.label }
    report.tasks[#report.tasks + 1] = row
    if e.state == "not_created" then
      row.status = "not_created"
      row.action = "the gateway never created this task (its task list says so): submit it again if you still want it"
      emit{ event = "not_created", key = e.key, provider = e.provider, message = row.action }
    elseif e.state == "not_sent" then
      row.status = "not_sent"
      row.action = "its process ended while uploading the images, before the submit was sent: nothing was "
        .. "charged; submit it again if you still want it"
      emit{ event = "not_sent", key = e.key, provider = e.provider, message = row.action }
    elseif e.state == "claimed" then
      row.status = "running"
      row.action = ("a running pixflow process (pid %s) is following this task; it is left to that one")
        :format(tostring(e.owner and e.owner.pid))
      emit{ event = "claimed", key = e.key, provider = e.provider, id = e.id, message = row.action }
    elseif e.state == "unconfirmed" then
      row.status = "unconfirmed"
      row.action = ("the submit to %s was sent but its answer was never recorded: it may exist and be "
        .. "billed. Look for it in the gateway's task list (submitted near %s) before submitting "
        .. "again; with its id, `pixflow download ID --provider %s` fetches it"):format(
        tostring(e.provider), when(e.t), tostring(e.provider))
      if e.list_incomplete then
        row.action = row.action .. ". The gateway's task list could not be read to its end, so pixflow could not tell"
      end
      if e.output and written_after(e.output, e.t) then
        -- the journal lost the answer (a full disk, say) but a video was saved where it goes
        row.action = row.action .. (". An MP4 written after this submit is at %s: it is most likely "
          .. "this task's video"):format(e.output)
      end
      if e.candidates then
        local ids = {}
        for i, x in ipairs(e.candidates) do ids[i] = x.id end
        row.action = row.action .. ". The gateway has these unclaimed tasks from that time: " .. table.concat(ids, ", ")
      end
      emit{ event = "unconfirmed", key = e.key, provider = e.provider, message = row.action }
    elseif e.state == "damaged" then
      row.status = "damaged"
      row.action = ("the journal has only part of this task%s: pixflow cannot follow it by itself%s")
        :format(e.id and (" (gateway id " .. tostring(e.id) .. ")") or "",
                e.id and "; `pixflow download ID --provider NAME` fetches it if you know its gateway" or "")
      emit{ event = "damaged", key = e.key, id = e.id, message = row.action }
    elseif e.state == "open" and e.output and written_after(e.output, e.t) then
      -- the file was renamed into place (so it is complete) before the journal said so
      j:record("downloaded", e.key, { path = e.output, found = true })
      row.status, row.path = "downloaded", e.output
      emit{ event = "finished", key = e.key, provider = e.provider, id = e.id, status = "downloaded", path = e.output }
    elseif e.state == "open" then
      local c, cerr = client_for(e)
      if not c then
        row.error = cerr
        row.action = tostring(cerr)
        emit{ event = "error", key = e.key, provider = e.provider, message = tostring(cerr) }
      else
        local t, aerr = c:task(e.id, { key = e.key })
        if not t then
          row.error, row.action = aerr, tostring(aerr)
          emit{ event = "error", key = e.key, provider = e.provider, message = tostring(aerr) }
        else
          pending[#pending + 1] = { row = row, task = t, client = c, output = e.output }
          emit{ event = "attached", key = e.key, provider = e.provider, id = e.id }
        end
      end
    end
  end
  -- follow each task to its end and, when it succeeded, its file
  local want_download = opts.download ~= false
  for _, p in ipairs(pending) do
    follower:add(p.task, { client = p.client, row = p.row, parents = true,
                           output = want_download and p.output or nil })
  end
  follower.deadline = core.now() + (opts.timeout or 1800)
  if not follower:run() then
    for _, item in ipairs(follower.items) do
      if not item.ended then
        item.row.status = item.task.status
        item.row.action = "still running at the gateway: run resume again later"
      end
    end
  end
  for _, c in pairs(clients) do
    if c and c ~= own then c:close() end
  end
  core.drain(10)                  -- what they left to their workers is in the journal on return
  if close_journal then j:close() end
  return report
end

return M
