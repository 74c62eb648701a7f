--- pixflow.client: the Client, one per gateway: pixflow.new (every option resolved and checked),
-- submit (validated before any I/O; held when it extends an unfinished task), task (re-attach by
-- id), poll (the pump and the change dispatch), on_change, inflight, close, resume.
local core = require "pixflow.core"
local errors = require "pixflow.errors"
local options = require "pixflow.options"
local option_defaults = require "pixflow.defaults"
local providers = require "pixflow.providers"
local capabilities = require "pixflow.capabilities"
local validate = require "pixflow.validate"
local journal = require "pixflow.journal"
local cjson = require "cjson"
local guard = require "pixflow.guard"
local chains = require "pixflow.chains"

local M = {}
local Client = {}
local client_mt = { __name = "pixflow.Client", __index = Client }
M.Client = Client

local POLL = { initial = "number", interval = "number", max = "number", backoff = "number",
               jitter = "number", max_failures = "number", min = "number", rate = "number",
               adaptive = "boolean", list = "boolean" }
local TIMEOUTS = { connect = "number", request = "number", download = "number",
                   low_speed_bytes = "number", low_speed_time = "number" }
local NEW = {
  provider = "string", api_key = "string", base_url = "string", model = "string",
  poll = "table", timeouts = "table", max_per_host = "number", max_body_bytes = "number",
  max_download_bytes = "number", download_attempts = "number", ca_file = "string",
  user_agent = "string", task_timeout = { "number", "table" }, region = "string",
  workspace = "string", ref_names = "boolean", uploader = "function", journal = { "string", "table" },
  retry = "table", clock = "string", trace = "string", budget = "number",
}
-- The retry policy (csrc/retry.c): full-jitter back-off between base and max seconds, a
-- Retry-After honoured up to after_max, and how many tries each kind of request gets.
local RETRY = { base = "number", max = "number", after_max = "number", submit_attempts = "number",
                upload_attempts = "number", download_attempts = "number", poll_failures = "number",
                lookup_delay = "number", lookup_attempts = "number" }

--- Create a client for one gateway.
-- syntax: client, err = pixflow.new{ provider = "apimart", api_key = ..., base_url = ..., ... }
-- The API key defaults to the provider's environment variable (APIMART_API_KEY, ...).
-- Returns: Client, or nil and an error (kind "auth" when no key is found).
function M.new(opts)
  options.check("new", 1, opts, NEW)
  -- the user's config file: its presets, and its defaults under what opts say
  local defaults = providers.config().defaults
  if next(defaults) then
    options.check("new", 1, defaults, NEW, 2)
    local merged = {}
    for k, v in pairs(defaults) do merged[k] = v end
    for k, v in pairs(opts) do merged[k] = v end
    opts = merged
  end
  if opts.poll then options.check("new", 1, opts.poll, POLL, 2, "poll.") end
  if opts.timeouts then options.check("new", 1, opts.timeouts, TIMEOUTS, 2, "timeouts.") end
  if opts.retry then options.check("new", 1, opts.retry, RETRY, 2, "retry.") end
  if type(opts.task_timeout) == "table" then
    for k, v in pairs(opts.task_timeout) do
      if type(k) ~= "string" or type(v) ~= "number" or v < 0 then
        options.fail("new", 1, 2, "field 'task_timeout' must be seconds, or a table of seconds by "
                     .. "model name (and 'default'), got %s = %s", tostring(k), tostring(v))
      end
    end
  end
  if opts.clock ~= nil and opts.clock ~= "manual" and opts.clock ~= "monotonic" then
    options.fail("new", 1, 2, "field 'clock' must be \"monotonic\" or \"manual\" (tests), got %q", opts.clock)
  end
  local name = opts.provider
  if name == nil then options.fail("new", 1, 2, "field 'provider' is required (one of: %s)",
                                   table.concat(providers.names(), ", ")) end
  local preset = providers.preset(name)
  if not preset then
    local hint = options.suggest(name, providers.names())
    options.fail("new", 1, 2, "unknown provider '%s'%s", name, hint and ("; did you mean '" .. hint .. "'?")
                 or ("; known: " .. table.concat(providers.names(), ", ")))
  end
  local model = opts.model or preset.default_model
  if not capabilities.get(name, model) then
    options.fail("new", 1, 2, "%s does not serve model '%s' (allowed: %s)", name, model,
                 table.concat(capabilities.models(name), ", "))
  end
  local key = opts.api_key
  if key == nil then key = os.getenv(preset.key_env) end
  if key == nil or key == "" then
    return nil, errors.new("auth", ("no API key for %s"):format(name),
                           { provider = name, hint = ("pass api_key to pixflow.new or set %s")
                             :format(preset.key_env) })
  end
  local kerr = guard.check_key(key, opts.api_key ~= nil and "api_key" or preset.key_env, name)  -- CR, LF, size
  if kerr then return nil, kerr end
  local base_url = opts.base_url or preset.base_url
  if opts.region or opts.workspace then
    local regions = preset.regions or {}
    local r = regions[opts.region or "beijing"]
    if not r then
      options.fail("new", 1, 2, "%s has no region '%s'%s", name, tostring(opts.region),
                   next(regions) and ("; known: " .. table.concat(options.sorted_keys(regions), ", "))
                   or " (it has one endpoint)")
    end
    if opts.workspace then
      if not r.workspace_url then options.fail("new", 1, 2, "region '%s' has no workspace endpoint", opts.region) end
      if not opts.workspace:find("^[%w-]+$") then
        options.fail("new", 1, 2, "field 'workspace' must be a workspace id, got %q", opts.workspace)
      end
      base_url = opts.base_url or r.workspace_url:gsub("{workspace}", opts.workspace)
    elseif not r.url then
      options.fail("new", 1, 2, "region '%s' needs a workspace (its endpoint is per workspace)", opts.region)
    else
      base_url = opts.base_url or r.url
    end
  end
  if not guard.is_url(base_url) then
    options.fail("new", 1, 2, "field 'base_url' must start with http:// or https://, got %q", base_url)
  end
  -- the journal: a path (this client opens and closes it), or an open Journal shared with
  -- others (a batch's or a resume's: one owner for all the tasks it follows)
  local j, own_journal = nil, false
  if type(opts.journal) == "table" then
    if not journal.is(opts.journal) then
      options.fail("new", 1, 2, "field 'journal' must be a path or an open journal (pixflow.journal.open)")
    end
    j = opts.journal
  end
  -- every number and switch, from opts, else the preset, else pixflow.defaults, each checked
  -- there by the field the user writes (a bad one raises at this function's caller)
  local co = option_defaults.resolve(opts, preset, 2, ("provider '%s'"):format(name))
  co.provider, co.adapter, co.base_url, co.api_key, co.auth = name, preset.adapter, base_url, key, preset.auth
  co.ca_file, co.clock, co.trace = opts.ca_file, opts.clock, opts.trace
  co.user_agent = opts.user_agent or ("pixflow/" .. core._VERSION)
  co.ref_names = (opts.ref_names == nil) and (preset.ref_names ~= false) or opts.ref_names
  if type(opts.journal) == "string" then
    local jerr
    j, jerr = journal.open(opts.journal)
    if not j then return nil, jerr end
    own_journal = true
  end
  co.journal = j and j._h
  local c, err = core.new_client(co)
  if not c then
    if own_journal then j:close() end
    return nil, err
  end
  return setmetatable({
    _core = c,
    provider = name,
    base_url = base_url,
    model = model,
    -- seconds, or { default = s, [model] = s }: the deadline of each task (queue, generation
    -- and download together), per gateway (its preset) and per model
    _task_timeouts = opts.task_timeout,
    task_timeout = co.task_timeout,
    uploader = opts.uploader,
    journal = j and j.path,
    _journal = j,
    _own_journal = own_journal,
    _by_key = setmetatable({}, { __mode = "v" }),   -- journal key -> the task following it here
    _listeners = {},
    _flows = setmetatable({}, { __mode = "k" }),      -- flows waiting on this client's tasks
    _chains = {},                                     -- task -> tasks held until it ends (pixflow.chains)
  }, client_mt)
end
--- Submit a generation. Never blocks: the request is validated, then queued; the pump sends it.
-- syntax: task, err = client:submit(request)
-- Returns: Task, or nil and an "invalid" error naming every problem (before any network I/O).
local SUBMIT_OPTS = { output = "string", label = "string" }

-- The deadline of a task of this model, in seconds.
function Client:_timeout_for(model)
  local tt = self._task_timeouts
  if type(tt) == "table" and model and tt[model] then return tt[model] end
  return self.task_timeout
end

function Client:submit(req, opts)
  if opts ~= nil then options.check("submit", 2, opts, SUBMIT_OPTS) end
  local norm, err = validate.request("submit", req, self.provider, function(m)
    return capabilities.get(self.provider, m)
  end, self.model, 2, { uploader = self.uploader ~= nil })
  if not norm then return nil, err end
  local output
  if opts and opts.output then
    local oerr
    output, oerr = guard.output_path(opts.output, true)
    if not output then return nil, oerr end
  end
  local source = err          -- validate's second result: a task to extend that has not succeeded
  if self.uploader and not capabilities.get(self.provider, norm.unified_model).uploads then
    local ok, uerr = self:_run_uploader(norm)
    if not ok then return nil, uerr end
  end
  if source and not norm.extend_from then
    -- a chain: held (files checked and hashed already) until the source succeeds
    local task, serr = self._core:submit(norm, self, true, self:_timeout_for(norm.unified_model), nil, output)
    if not task then return nil, serr end
    chains.hold(source, self, task, norm, opts)
    return task
  end
  -- the core writes the intent (before anything is sent) and every later record itself
  local task, serr = self._core:submit(norm, self, false, self:_timeout_for(norm.unified_model),
                                       self:_intent(norm, opts), output)
  if task and task.journal_key then self._by_key[task.journal_key] = task end
  return task, serr
end

-- What the journal records before anything of a task is sent: the arguments the core's submit
-- and release take ({ key, intent = JSON }), or nil without a journal.
function Client:_intent(norm, opts)
  if not self._journal then return nil end
  local ok, text = pcall(cjson.encode, {
    provider = self.provider, base_url = self.base_url, model = norm.unified_model,
    request = norm, output = opts and opts.output, label = opts and opts.label })
  if not ok then
    options.fail("submit", 1, 3, "the request cannot be recorded in the journal: %s", tostring(text))
  end
  return { key = core.uuid(), intent = text }
end

-- For gateways without an upload call: the user's uploader(path, info) turns each local file
-- into a public URL (it runs here, in the caller's submit, and may block as long as it likes).
function Client:_run_uploader(norm)
  local function convert(path, field)
    if guard.is_url(path) then return path end
    local ok, url, uerr = pcall(self.uploader, path, { provider = self.provider, field = field })
    if not ok or type(url) ~= "string" or not guard.is_url(url) then
      local why = not ok and tostring(url) or (uerr and tostring(uerr)) or
        ("it returned %s, not an http(s) URL"):format(type(url) == "string" and ("%q"):format(url) or type(url))
      return nil, errors.new("io", ("the uploader failed for %s: %s"):format(path, why),
                             { provider = self.provider, hint = "fix the uploader, or give a public URL" })
    end
    return url
  end
  for i, r in ipairs(norm.references or {}) do
    for j, img in ipairs(r.images) do
      local url, err = convert(img, ("references[%d].images[%d]"):format(i, j))
      if not url then return nil, err end
      r.images[j] = url
    end
  end
  for _, f in ipairs({ "image", "first_frame", "last_frame" }) do
    if norm[f] then
      local url, err = convert(norm[f], f)
      if not url then return nil, err end
      norm[f] = url
    end
  end
  return true
end

--- Re-attach to a task the gateway already accepted (by its id), to wait for it or download it.
-- syntax: task = client:task(id)
function Client:task(id, opts)
  if type(id) ~= "string" or id == "" then
    options.fail("task", 1, 2, "task id (non-empty string) expected, got %s", type(id))
  end
  if opts ~= nil then options.check("task", 2, opts, { key = "string" }) end
  local key = opts and opts.key
  -- a journal task this client already follows is that task, not a second follower of it
  local known = key and self._by_key[key]
  if known and not known.done and not known.halted then return known end
  -- with a journal the claim (one live follower per task, across processes) is taken on the
  -- worker: a task another process follows halts with code "claimed" and is left to that one
  local t, err = self._core:attach(id, self, self.task_timeout, self._journal and key or nil)
  if not t then return nil, err end
  if key and self._journal then self._by_key[key] = t end
  return t
end

-- Start t's download to path (the core records where it goes first, and refuses a path another
-- task of the journal may still write).
function Client:_start_download(t, path)
  local ok_path, perr = guard.output_path(path)
  if not ok_path then return nil, perr end
  return t:_download(ok_path)
end

--- Pump the engine: start due polls, finish transfers, update tasks. Never blocks longer than
-- timeout seconds (default 0: return at once); returns early when a task changed.
-- syntax: n = client:poll([timeout])   -- n: tasks still in flight
function Client:poll(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0 or timeout ~= timeout) then
    options.fail("poll", 1, 2, "timeout must be a number >= 0, got %s", tostring(timeout))
  end
  local n, jerr = self:_pump(timeout)
  -- workflows waiting on this client's tasks go on where they can
  if next(self._flows) then
    local flows = {}
    for f in pairs(self._flows) do flows[#flows + 1] = f end
    for _, f in ipairs(flows) do f:_advance() end
  end
  return n, jerr
end

-- The pump and the change dispatch, without stepping workflows (Flow:step calls this).
function Client:_pump(timeout)
  local n, jerr = self._core:poll(timeout)
  local changed = self._core:_changed()
  if #changed > 0 then
    chains.settle(self, changed)
    for _, fn in ipairs(self._listeners) do
      for _, task in ipairs(changed) do fn(task) end
    end
  end
  return n, jerr
end

--- Call fn(task) after a pump in which task changed (status, progress, halt, download).
function Client:on_change(fn)
  if type(fn) ~= "function" then options.fail("on_change", 1, 2, "function expected, got %s", type(fn)) end
  self._listeners[#self._listeners + 1] = fn
  return self
end

--- Tasks in flight (submitting, being polled, or downloading).
function Client:inflight()
  return self._core:inflight()
end

--- Stop every transfer and release the client. Tasks keep their last known state.
function Client:close()
  self._core:close()
  if self._own_journal then self._journal:close() end
end
client_mt.__close = Client.close
client_mt.__tostring = function(self) return tostring(self._core) end

-- ------------------------------------------------------------------ resume

--- pixflow.resume (see pixflow/resume.lua): finish what a journal's earlier runs left.
function M.resume(opts)
  return require("pixflow.resume").run(M.new, opts)
end

--- Resume the unfinished tasks of this client's journal (see pixflow.resume). This client serves
-- the tasks of its own provider and base URL; others get clients keyed from the environment or
-- opts.keys.
function Client:resume(opts)
  if not self.journal then
    options.fail("resume", 1, 2, "this client has no journal (pixflow.new{ journal = path })")
  end
  opts = opts or {}
  options.check("resume", 1, opts, { keys = "table", timeout = "number", download = "boolean",
                                      on_event = "function" })
  return M.resume{ journal = self.journal, keys = opts.keys, timeout = opts.timeout,
                   download = opts.download, on_event = opts.on_event, client = self }
end

return M
