--- pixflow.batch: many generations from a manifest (JSON or CSV), with a concurrency limit per
-- gateway, each result downloaded to its own file, and a summary. Running it again skips what is
-- done (the file is there), re-attaches to what the journal knows is running, and never submits
-- again what may already be billed (an unconfirmed submit).
local core = require "pixflow.core"
local cjson = require "cjson"
local errors = require "pixflow.errors"
local journal = require "pixflow.journal"
local options = require "pixflow.options"
local guard = require "pixflow.guard"
local follow = require "pixflow.follow"

local M = {}

local ITEM_EXTRA = { output = "string", provider = "string", label = "string" }

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function resolve(base, p)
  if p:find("^/") or guard.is_url(p) or p:find("^oss://") or base == "." then return p end
  return base .. "/" .. p
end

-- "hero=img/h.png;city=img/c.jpg:background" -> references
local function parse_refs(s, base)
  local refs = {}
  for part in s:gmatch("[^;]+") do
    local name, rest = part:match("^%s*([^=]+)=(.-)%s*$")
    if not name then return nil, ("references: %q is not NAME=IMAGE[:TYPE]"):format(part) end
    local img, typ = rest:match("^(.-):(subject)$")
    if not img then img, typ = rest:match("^(.-):(background)$") end
    refs[#refs + 1] = { name = name, image = resolve(base, img or rest), type = typ }
  end
  return refs
end

-- A CSV line into fields (RFC 4180 quoting).
local function csv_fields(line)
  local out, i, n = {}, 1, #line
  while i <= n + 1 do
    if line:sub(i, i) == '"' then
      local buf, j = {}, i + 1
      while j <= n do
        local ch = line:sub(j, j)
        if ch == '"' then
          if line:sub(j + 1, j + 1) == '"' then buf[#buf + 1] = '"'; j = j + 2
          else j = j + 1 break end
        else buf[#buf + 1] = ch; j = j + 1 end
      end
      out[#out + 1] = table.concat(buf)
      i = j + 1
    else
      local j = line:find(",", i, true) or n + 1
      out[#out + 1] = line:sub(i, j - 1)
      i = j + 1
    end
  end
  return out
end

local NUMERIC = { duration = true, seed = true, count = true }
local BOOLEAN = { audio = true, watermark = true, expand_prompt = true }

--- Read a manifest. JSON: a list of items, or { defaults = {...}, items = [...] }; CSV: a header
-- row (output, provider, model, prompt, references, duration, resolution, aspect_ratio, seed,
-- audio, negative_prompt, ...) then one row per item; references as "name=image[:type];...".
-- Relative paths (outputs, images) are taken from the manifest's directory.
-- Returns items, or nil and an invalid error naming the line or item.
function M.load(path)
  local f, oerr = io.open(path, "rb")
  if not f then return nil, errors.new("io", ("cannot read the manifest %s: %s"):format(path, oerr)) end
  local text = f:read("a")
  f:close()
  local base = dirname(path)
  local items = {}
  if path:lower():find("%.csv$") then
    local header
    local n = 0
    for line in text:gmatch("[^\r\n]+") do
      n = n + 1
      local fields = csv_fields(line)
      if not header then
        header = fields
      else
        local item = {}
        for i, name in ipairs(header) do
          local v = fields[i]
          if v and v ~= "" then
            if NUMERIC[name] then
              v = math.tointeger(tonumber(v))
              if not v then return nil, errors.new("invalid", ("%s:%d: %s must be a whole number"):format(path, n, name)) end
            elseif BOOLEAN[name] then
              v = (v == "true" or v == "1" or v == "yes")
            elseif name == "references" then
              local refs, rerr = parse_refs(v, base)
              if not refs then return nil, errors.new("invalid", ("%s:%d: %s"):format(path, n, rerr)) end
              v = refs
            end
            item[name] = v
          end
        end
        items[#items + 1] = item
      end
    end
  else
    local ok, doc = pcall(cjson.decode, text)
    if not ok then return nil, errors.new("invalid", ("%s is not valid JSON: %s"):format(path, doc)) end
    local list, defaults = doc, {}
    if type(doc) == "table" and doc.items then list, defaults = doc.items, doc.defaults or {} end
    if type(list) ~= "table" then return nil, errors.new("invalid", ("%s: expected a list of items"):format(path)) end
    for i, raw in ipairs(list) do
      if type(raw) ~= "table" then return nil, errors.new("invalid", ("%s: item %d is not an object"):format(path, i)) end
      local item = {}
      for k, v in pairs(defaults) do item[k] = v end
      for k, v in pairs(raw) do item[k] = v end
      for k, v in pairs(item) do
        if NUMERIC[k] and type(v) == "number" then item[k] = math.tointeger(v) or v end
      end
      if type(item.references) == "table" then
        for _, r in ipairs(item.references) do
          if type(r.image) == "string" then r.image = resolve(base, r.image) end
        end
      end
      items[#items + 1] = item
    end
  end
  for i, item in ipairs(items) do
    if type(item.output) ~= "string" or item.output == "" then
      return nil, errors.new("invalid", ("%s: item %d has no output file"):format(path, i))
    end
    item.output = resolve(base, item.output)
    for k, v in pairs(item) do
      if type(v) == "string" and (k == "image" or k == "first_frame" or k == "last_frame") then
        item[k] = resolve(base, v)
      end
    end
  end
  return items
end

function M.is_mp4(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local head = f:read(8)
  f:close()
  return head ~= nil and #head == 8 and head:sub(5, 8) == "ftyp"
end

local RUN = { provider = "string", base_urls = "table", keys = "table", concurrency = "number",
              journal = { "string", "table" }, on_event = "function", poll = "table", timeout = "number",
              new_client = "function", on_tick = "function", sandbox = "table" }

--- Run items (from M.load, or a list of unified requests with output and provider). Returns a
-- summary: a list of { output, provider, id, status, seconds, error, action }.
-- With a journal, each item's output is claimed for this run first: an item another live
-- pixflow process is running (a second batch of the same manifest, a resume) is left to it
-- (status "claimed"); a dead process's claims are taken over.
function M.run(items, opts)
  opts = opts or {}
  options.check("batch", 2, opts, RUN, 2)
  core.drain(10)                  -- a run closed a moment ago gives its claims back first
  local new_client = opts.new_client or require("pixflow").new
  local limit = opts.concurrency or 4
  local emit = opts.on_event or function() end
  local summary, rows, queue = {}, {}, {}
  local j, own_journal
  if journal.is(opts.journal) then
    j = opts.journal
  elseif opts.journal then
    local jerr
    j, jerr = journal.open(opts.journal)
    if not j then return nil, jerr end
    own_journal = true
    for _, w in ipairs(j.warnings) do emit{ event = "warning", message = w } end
  end
  -- outputs are kept absolute (the journal's, and a claim's, name for them)
  for _, item in ipairs(items) do
    local abs, aerr = core.abspath(item.output)
    if not abs then
      if own_journal then j:close() end
      return nil, aerr
    end
    item.output = abs
  end
  local clients = {}
  -- follows every task of the run to its file (and pumps every client the run made)
  local follower = follow.new{ slice = 0.2 }
  local function client_for(provider, base_url)
    local k = provider .. "|" .. (base_url or "")
    if clients[k] == nil then
      local url = base_url or (opts.base_urls and opts.base_urls[provider])
      local c, err = new_client{ provider = provider, journal = j, poll = opts.poll, base_url = url,
        api_key = require("pixflow.resume").key_for(opts, provider, url) }
      clients[k] = c or false
      if not c then return nil, err end
      follower:watch(c)
    end
    return clients[k] or nil
  end
  local function finish()
    for _, r in ipairs(rows) do r.task, r.client = nil, nil end
    for _, c in pairs(clients) do if c then c:close() end end
    core.drain(10)                -- their last records, written by their workers, are in the journal
    if own_journal then j:close() end
  end
  -- this run's items: claimed before anything is decided, so that two runs never both submit one
  -- (in one transaction: two runs of one manifest at once never split it, so that the first
  -- runs every item and the second leaves every item to it)
  local held = {}
  if j then
    local names = {}
    for i, item in ipairs(items) do names[i] = "output:" .. item.output end
    local got, cerr = j:claim_all(names)
    if not got then finish() return nil, cerr end
    for i, item in ipairs(items) do
      if got[i][1] == "held" then held[item.output] = got[i][2] end
    end
  end
  -- what the journal already knows, by output file
  local known = {}
  if j then
    local entries, terr = j:tasks()
    if not entries then finish() return nil, terr end
    journal.settle_unsent(j, entries)
    -- unconfirmed submits of earlier runs: ask the gateways that list their tasks
    journal.reconcile(j, entries, function(e) return client_for(e.provider, e.base_url) end)
    for _, e in ipairs(entries) do if e.output then known[e.output] = e end end
  end
  for i, item in ipairs(items) do
    local provider = item.provider or opts.provider or "apimart"
    local row = { output = item.output, provider = provider, label = item.label, status = "pending" }
    rows[i] = row
    summary[i] = row
    local e = known[item.output]
    if held[item.output] then
      row.status = "claimed"
      row.action = ("another pixflow process (pid %s) is running this item: it is left to that one")
        :format(tostring(held[item.output]))
      emit{ event = "claimed", output = item.output, message = row.action }
    elseif M.is_mp4(item.output) then
      row.status, row.id = "done", e and e.id
      -- a file is renamed into place only when complete: if the process died before the journal
      -- said so, the disk says it now (if it was written after the task began: else it is older)
      if e and e.state == "open" and e.key and require("pixflow.resume").written_after(item.output, e.t) then
        j:record("downloaded", e.key, { path = item.output, found = true })
      end
      emit{ event = "skipped", output = item.output, reason = "the file is there" }
    elseif e and e.state == "unconfirmed" then
      row.status = "unconfirmed"
      row.action = "its submit was sent but never answered: look for it at the gateway before running it again"
      emit{ event = "unconfirmed", output = item.output, provider = e.provider }
    elseif e and e.state == "claimed" then
      row.status = "claimed"
      row.action = ("a running pixflow process (pid %s) is following its task: it is left to that one")
        :format(tostring(e.owner and e.owner.pid))
      emit{ event = "claimed", output = item.output, message = row.action }
    elseif e and (e.state == "open" or (e.state == "done" and e.status == "succeeded")) and e.id then
      local c, cerr = client_for(e.provider, e.base_url)
      local t, terr
      if c then t, terr = c:task(e.id, { key = e.key }) end
      if not c or not t then
        row.status, row.error = "failed", cerr or terr
      else
        row.task, row.client, row.id, row.started = t, c, e.id, core.now()
        row.status = "attached"
        follower:add(t, { client = c, row = row, output = row.output, parents = true, at = i })
        emit{ event = "attached", output = item.output, provider = e.provider, id = e.id }
      end
    else
      local req = {}
      for k, v in pairs(item) do if not ITEM_EXTRA[k] then req[k] = v end end
      queue[#queue + 1] = { row = row, req = req, provider = provider, at = i }
    end
  end
  -- the outputs this run does not write (done, unconfirmed, another process's) are free again:
  -- a resume may need to download one of them
  if j then
    for _, r in ipairs(rows) do
      if not held[r.output] and not r.task and r.status ~= "pending" then j:unclaim("output:" .. r.output) end
    end
  end
  -- tasks of a gateway in flight, and whether one of its submits is still unanswered: submits go
  -- one at a time per gateway, so that an unanswered one can be found again in the gateway's
  -- task list (journal.reconcile) without confusing it with another
  local function count_running(provider)
    local n, unanswered = 0, false
    for _, r in ipairs(rows) do
      if r.task and r.provider == provider and not r.finished then
        n = n + 1
        if not r.task.id and r.task.status == "submitting" then unanswered = true end
      end
    end
    return n, unanswered
  end
  -- start what the per-gateway limit allows (at the start of every round of the follower)
  follower.before = function(f)
    local i = 1
    while i <= #queue do
      local q = queue[i]
      local n, unanswered = count_running(q.provider)
      if n < limit and not unanswered then
        table.remove(queue, i)
        local c, cerr = client_for(q.provider)
        local t, serr
        if c then t, serr = c:submit(q.req, { output = q.row.output, label = q.row.label }) end
        if not t then
          q.row.status, q.row.error, q.row.finished = "failed", serr or cerr, true
          emit{ event = "failed", output = q.row.output, error = tostring(serr or cerr) }
        else
          q.row.task, q.row.client, q.row.started, q.row.status = t, c, core.now(), "submitted"
          emit{ event = "submitted", output = q.row.output, provider = q.provider }
          f:add(t, { client = c, row = q.row, output = q.row.output, parents = true, at = q.at })
        end
      else
        i = i + 1
      end
    end
    f.busy = #queue > 0
  end
  -- each task, in the manifest's order: its end (downloaded on success), or a new status
  follower.on_update = function(item, ended)
    local r, t = item.row, item.task
    r.id, r.downloading = t.id, item.downloading
    if ended then
      r.finished, r.status, r.error = true, item.status, item.error
      if item.failed_download then
        r.action = "the video was not saved: run the batch again to retry the download"
      elseif item.status == "claimed" then
        -- another process took its task between the journal's read and this claim: its output
        -- is that one's to write
        r.action, r.error = tostring(r.error), nil
        if j then j:unclaim("output:" .. r.output) end
        emit{ event = "claimed", output = r.output, message = r.action }
      end
      r.seconds = core.now() - r.started
      emit{ event = "finished", output = r.output, provider = r.provider, id = t.id, status = r.status,
            error = r.error and tostring(r.error) }
    elseif r.status ~= t.status and not item.downloading then
      r.status = t.status
      emit{ event = "progress", output = r.output, id = t.id, status = t.status, progress = t.progress }
    end
  end
  if opts.on_tick then follower.on_step = function() opts.on_tick(rows) end end
  follower.deadline = opts.timeout and core.now() + opts.timeout
  if not follower:run() then
    for _, r in ipairs(rows) do
      if r.task and not r.finished then
        r.action = "still running: run the batch (or pixflow resume) again later"
      end
    end
  end
  finish()
  return summary
end

--- The summary as printable lines (a table).
function M.format(summary)
  local lines = { ("%-32s %-12s %-40s %-12s %s"):format("output", "provider", "task", "status", "seconds") }
  local counts = {}
  for _, r in ipairs(summary) do
    counts[r.status] = (counts[r.status] or 0) + 1
    lines[#lines + 1] = ("%-32s %-12s %-40s %-12s %s"):format(r.output, r.provider, r.id or "-", r.status,
      r.seconds and ("%.1f"):format(r.seconds) or "-")
    if r.error then lines[#lines + 1] = "    " .. tostring(r.error) end
    if r.action then lines[#lines + 1] = "    " .. r.action end
  end
  local parts = {}
  for _, k in ipairs(options.sorted_keys(counts)) do parts[#parts + 1] = ("%d %s"):format(counts[k], k) end
  lines[#lines + 1] = ("%d items: %s"):format(#summary, table.concat(parts, ", "))
  return lines
end

return M
