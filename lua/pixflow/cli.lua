--- pixflow.cli: the `pixflow` command. `pixflow help` lists the commands, `pixflow CMD --help`
-- each one's options. Tasks go through the journal ($XDG_STATE_HOME/pixflow/journal.jsonl) so
-- that an interrupted run can be finished with `pixflow resume`.
local M = {}

local EXIT = { ok = 0, usage = 1, invalid = 2, auth = 3, quota = 3, failed = 4, moderated = 4,
               canceled = 4, timeout = 5, unconfirmed = 7, other = 6, interrupted = 130 }
M.EXIT = EXIT

local USAGE = [[
usage: pixflow <command> [options]

commands:
  generate   submit a generation, follow it, and download the MP4
  status     show a task's status by id
  download   download a finished task's MP4 by id
  cancel     ask the gateway to cancel a task (DashScope, while queued)
  list       the journal's tasks and where each one stands
  resume     finish what an interrupted run left: poll and download, never resubmit
  batch      run many generations from a JSON or CSV manifest
  providers  the gateways and what each model accepts
  sandbox    run the local gateway emulator
  version    print the version

common options:
  --provider NAME      gateway preset (default apimart)
  --base-url URL       the gateway's base URL
  --sandbox URL        use a running sandbox: the base URL becomes URL/<provider>
  --journal PATH       journal file (default $XDG_STATE_HOME/pixflow/journal.jsonl)
  --no-journal         keep no journal
  --trace PATH         append one JSON line per HTTP request to PATH (no key, no signed query)
  --poll SECONDS       status poll interval (default: the gateway's; 0.5 with --sandbox)
  --json               print one JSON object per event per line (the default when stdout is
                       not a terminal is plain lines)

The API key comes from the provider's variable: PIXVERSE_API_KEY, QUICKROUTER_API_KEY,
APIMART_API_KEY, DASHSCOPE_API_KEY, JIEKOU_API_KEY, BAICAI_API_KEY. NO_COLOR is honoured.

exit codes: 0 success, 1 usage, 2 invalid request, 3 auth or quota, 4 generation failed,
moderated or canceled, 5 timeout (the task may still finish: pixflow resume), 6 network,
gateway or disk failure, 7 unconfirmed submit, 130 interrupted (the task is in the journal).]]

local HELP = {
  generate = [[
usage: pixflow generate --prompt TEXT [options]
  --prompt TEXT            the prompt; refer to references as @name
  --ref NAME=IMAGE[:TYPE]  a reference image, a public URL or a local file (repeatable);
                           TYPE is subject or background
  --model NAME             unified model (v4.5, v5, v5.5, v5.6, v6, c1)
  --image IMAGE            image mode: the first frame
  --first-frame IMAGE --last-frame IMAGE   transition mode
  --extend TASK_ID         extend mode
  --duration N  --resolution R  --aspect A  --seed N  --negative TEXT  --count N
  --audio  --watermark  --expand-prompt
  -o, --output PATH        where to write the MP4 (default out.mp4)
  --timeout SECONDS        stop waiting after this long (default 1800); the task goes on
  plus the common options (pixflow help)]],
  status = "usage: pixflow status TASK_ID [--provider NAME] [--base-url URL]",
  download = "usage: pixflow download TASK_ID [-o PATH] [--provider NAME] [--base-url URL] [--timeout S]",
  cancel = "usage: pixflow cancel TASK_ID [--provider NAME] [--base-url URL]",
  list = "usage: pixflow list [--journal PATH] [--json]",
  resume = "usage: pixflow resume [--journal PATH] [--timeout SECONDS] [--json] [--sandbox URL]",
  batch = [[
usage: pixflow batch MANIFEST [--concurrency N] [--provider NAME] [--sandbox URL] [--journal PATH]
  MANIFEST is JSON (a list of requests, each with "output" and optionally "provider", or
  {"defaults": {...}, "items": [...]}) or CSV (a header row: output, provider, model, prompt,
  references as "name=image[:type];...", duration, resolution, aspect_ratio, seed, ...).
  Running it again skips what is done and never resubmits a task that may be billed.]],
  providers = "usage: pixflow providers",
  sandbox = "usage: pixflow sandbox [--port N] [--task-seconds S] [--seed N] [--exit-with-parent]",
}

local function eprint(...)
  io.stderr:write(table.concat({ ... }, " "), "\n")
end

local function exit_code(err)
  if not err then return EXIT.other end
  return EXIT[err.kind] or EXIT.other
end

-- "--flag value", "--flag=value", boolean flags, -o; positional arguments apart.
local BOOLEANS = { audio = true, watermark = true, ["expand-prompt"] = true, help = true, json = true,
                   ["no-journal"] = true }
local function parse(args)
  local out, pos = { refs = {} }, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local k, v = a:match("^%-%-([%w-]+)=(.*)$")
    if not k then k = a:match("^%-%-([%w-]+)$") or (a == "-o" and "output") or (a == "-h" and "help") end
    if k then
      if BOOLEANS[k] then
        out[k] = true
      else
        if v == nil then
          i = i + 1
          v = args[i]
          if v == nil then return nil, "option --" .. k .. " needs a value" end
        end
        if k == "ref" then out.refs[#out.refs + 1] = v else out[k] = v end
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return out, pos
end

local function whole(s, name)
  local n = s and math.tointeger(tonumber(s))
  if s ~= nil and not n then return nil, ("--%s: %q is not a whole number"):format(name, s) end
  return n
end

-- ------------------------------------------------------------ output: terminal or JSON lines

local function make_ui(o)
  local cjson = require "cjson"
  local json = o.json or os.execute("test -t 1") ~= true
  local tty = os.execute("test -t 2") == true
  local color = tty and not os.getenv("NO_COLOR")
  local ui = { json = json and o.json, tty = tty }
  local function paint(code, s) return color and ("\27[" .. code .. "m" .. s .. "\27[0m") or s end
  local COLORS = { succeeded = "32", downloaded = "32", failed = "31", moderated = "31", canceled = "33",
                   unconfirmed = "33" }
  function ui.event(ev)
    if o.json then
      io.stdout:write(cjson.encode(ev), "\n")
      io.stdout:flush()
    elseif not tty and ev.event ~= "progress" then
      local parts = { ev.event }
      for _, k in ipairs({ "provider", "id", "status", "progress", "output", "path", "message", "error" }) do
        if ev[k] ~= nil then parts[#parts + 1] = ("%s=%s"):format(k, tostring(ev[k])) end
      end
      io.stderr:write(table.concat(parts, " "), "\n")
    end
  end
  -- one live line per task on a terminal: phase, bar, percent, elapsed, bytes
  function ui.progress(t, started)
    local now = require("pixflow").now()
    local pct = t.progress or 0
    if ui.json then
      ui.event{ event = "progress", provider = t.provider, id = t.id, status = t.status, phase = t.phase,
                progress = t.progress, elapsed = math.floor((now - started) * 10) / 10, bytes = t.bytes }
      return
    end
    if not tty then
      if t.status ~= ui.last_status then
        ui.last_status = t.status
        io.stderr:write(("%s %s %s\n"):format(t.provider, t.id or "-", t.status))
      end
      return
    end
    local width = 24
    local fill = math.floor(pct * width / 100)
    local bar = ("#"):rep(fill) .. ("-"):rep(width - fill)
    local bytes = t.bytes > 0 and ("  %.1f MB"):format(t.bytes / 1048576) or ""
    io.stderr:write(("\r\27[K%s %s %-11s [%s] %3d%%  %5.1f s%s"):format(t.provider, t.id or "(submitting)",
      paint(COLORS[t.status] or "36", t.phase == "downloading" and "downloading" or t.status), bar, pct,
      now - started, bytes))
    io.stderr:flush()
  end
  function ui.finish_line() if tty and not o.json then io.stderr:write("\n") end end
  function ui.status_word(s) return paint(COLORS[s] or "0", s) end
  return ui
end

-- ------------------------------------------------------------ clients

local function journal_path(o)
  if o["no-journal"] then return nil end
  return o.journal or require("pixflow.journal").default_path()
end

-- Poll cadence: --poll SECONDS; against a local sandbox a quick one by default.
local function poll_opts(o)
  local p = tonumber(o.poll) or (o.sandbox and 0.5)
  return p and { initial = p, interval = p } or nil
end

-- The key a sandbox is given when the provider's variable is unset: the sandbox takes any key
-- but its magic ones (docs/sandbox.md), and this one never leaves 127.0.0.1's sandbox.
M.SANDBOX_KEY = "sandbox-key"

local function client_for(o, provider)
  local pixflow = require "pixflow"
  provider = provider or o.provider or "apimart"
  local base = o["base-url"] or (o.sandbox and (o.sandbox:gsub("/+$", "") .. "/" .. provider))
  local opts = { provider = provider, base_url = base, model = o.model, journal = journal_path(o),
                 poll = poll_opts(o), trace = o.trace }
  local client, err = pixflow.new(opts)
  if client or not (err and err.kind == "auth" and tostring(err.message):find("^no API key")) then
    return client, err
  end
  if o.sandbox and not o["base-url"] then
    -- --sandbox URL and no key set: the request goes only to that sandbox, which takes any key
    opts.api_key = M.SANDBOX_KEY
    return pixflow.new(opts)
  end
  -- advice for the command line: the variable to set (not pixflow.new's api_key)
  local preset = require("pixflow.providers").preset(provider)
  local var = preset and preset.key_env
  err.hint = var and ("set %s in the environment (export %s=your-key), or add --sandbox URL to try it "
    .. "against a local sandbox (pixflow sandbox) with no key"):format(var, var) or err.hint
  return nil, err
end

local function interrupted_hint(o, task)
  local j = journal_path(o)
  if task and task.id then
    return ("interrupted: task %s keeps running at %s%s. `pixflow resume` follows it and downloads "
      .. "the result; nothing was canceled."):format(task.id, task.provider,
      j and (" and is in the journal (" .. j .. ")") or "")
  end
  return "interrupted" .. (j and ("; `pixflow resume` finishes what the journal holds (" .. j .. ")") or "")
end

-- ------------------------------------------------------------ commands

local function generate(o, pos)
  if not o.prompt then eprint("pixflow generate: --prompt is required\n" .. HELP.generate) return EXIT.usage end
  local req = { prompt = o.prompt, image = o.image, first_frame = o["first-frame"],
                last_frame = o["last-frame"], extend_from = o.extend, resolution = o.resolution,
                aspect_ratio = o.aspect, negative_prompt = o.negative, model = o.model,
                audio = o.audio or nil, watermark = o.watermark or nil, expand_prompt = o["expand-prompt"] or nil }
  local werr
  req.duration, werr = whole(o.duration, "duration")
  if not werr then req.seed, werr = whole(o.seed, "seed") end
  if not werr then req.count, werr = whole(o.count, "count") end
  if werr then eprint("pixflow generate: " .. werr) return EXIT.usage end
  if #o.refs > 0 then
    req.references = {}
    for _, r in ipairs(o.refs) do
      local name, rest = r:match("^([^=]+)=(.+)$")
      if not name then eprint(("pixflow generate: --ref %q is not NAME=IMAGE[:TYPE]"):format(r)) return EXIT.usage end
      local url, typ = rest:match("^(.-):(subject)$")
      if not url then url, typ = rest:match("^(.-):(background)$") end
      req.references[#req.references + 1] = { name = name, image = url or rest, type = typ }
    end
  end
  local ui = make_ui(o)
  local client, cerr = client_for(o)
  if not client then eprint("pixflow: " .. tostring(cerr)) return exit_code(cerr) end
  local output = o.output or "out.mp4"
  local task, serr = client:submit(req, { output = output })
  if not task then eprint("pixflow: " .. tostring(serr)) return exit_code(serr) end
  M.current_task = task
  local started = require("pixflow").now()
  ui.event{ event = "submitted", provider = task.provider, mode = task.mode, output = output }
  local path, derr = task:download(output, { timeout = tonumber(o.timeout) or 1800,
                                             on_progress = function(t) ui.progress(t, started) end })
  if not ui.json then ui.progress(task, started) end   -- the last state, drawn in full
  ui.finish_line()
  if not path then
    ui.event{ event = "error", provider = task.provider, id = task.id, status = task.status,
              kind = derr.kind, message = tostring(derr) }
    if not ui.json then eprint("pixflow: " .. tostring(derr)) end
    return exit_code(derr)
  end
  ui.event{ event = "done", provider = task.provider, id = task.id, path = path, cost = task.cost }
  if not ui.json then print(path) end
  client:close()
  return EXIT.ok
end

local function by_id(cmd, o, pos)
  if not pos[1] then eprint(HELP[cmd]) return EXIT.usage end
  local ui = make_ui(o)
  local client, cerr = client_for(o)
  if not client then eprint("pixflow: " .. tostring(cerr)) return exit_code(cerr) end
  local task = client:task(pos[1])
  M.current_task = task
  if cmd == "cancel" then
    local ok, err = task:cancel{ timeout = tonumber(o.timeout) or 60 }
    if not ok then eprint("pixflow: " .. tostring(err)) return exit_code(err) end
    ui.event{ event = "canceled", provider = task.provider, id = task.id }
    if not ui.json then print(("%s %s: the gateway accepted the cancel"):format(task.provider, task.id)) end
    return EXIT.ok
  end
  if cmd == "status" then
    local deadline = require("pixflow").now() + (tonumber(o.timeout) or 60)
    while task.status == "queued" and task.progress == nil and not task.halted
          and require("pixflow").now() < deadline do
      client:poll(0.5)
    end
    if task.halted then eprint("pixflow: " .. tostring(task.error)) return exit_code(task.error) end
    ui.event{ event = "status", provider = task.provider, id = task.id, status = task.status,
              progress = task.progress, video_url = task.video_url, error = task.error and tostring(task.error) }
    if not ui.json then
      print(("%s %s %s%s%s"):format(task.provider, task.id, ui.status_word(task.status),
        task.progress and ("  " .. task.progress .. "%") or "", task.video_url and ("  " .. task.video_url) or ""))
      if task.error then print(tostring(task.error)) end
    end
    return EXIT.ok
  end
  local started = require("pixflow").now()
  local path, err = task:download(o.output or M.default_output(pos[1]), { timeout = tonumber(o.timeout),
    on_progress = function(t) ui.progress(t, started) end })
  ui.finish_line()
  if not path then eprint("pixflow: " .. tostring(err)) return exit_code(err) end
  ui.event{ event = "done", provider = task.provider, id = task.id, path = path }
  if not ui.json then print(path) end
  return EXIT.ok
end

local function list(o)
  local journal = require "pixflow.journal"
  local path = journal_path(o) or journal.default_path()
  local tasks, warnings = journal.read(path)
  if not tasks then eprint("pixflow: " .. tostring(warnings)) return EXIT.other end
  local ui = make_ui(o)
  for _, w in ipairs(warnings) do eprint("pixflow: warning: " .. w) end
  for _, t in ipairs(tasks) do
    local status = t.downloaded and "downloaded" or t.status or (t.id and "running") or "unconfirmed"
    if ui.json then
      ui.event{ event = "task", key = t.key, provider = t.provider, id = t.id, status = status,
                output = t.output, path = t.downloaded, label = t.label, submitted = t.t }
    else
      print(("%-20s %-12s %-40s %-12s %s"):format(os.date("%Y-%m-%d %H:%M:%S", math.floor(t.t or 0)),
        t.provider or "?", t.id or "-", ui.status_word(status), t.downloaded or t.output or ""))
    end
  end
  if not ui.json and #tasks == 0 then print("(no tasks in " .. path .. ")") end
  return EXIT.ok
end

local function resume(o)
  local pixflow = require "pixflow"
  local ui = make_ui(o)
  local report, err = pixflow.resume{ journal = journal_path(o) or require("pixflow.journal").default_path(),
    timeout = tonumber(o.timeout), poll = poll_opts(o), on_event = function(ev) ui.event(ev) end }
  if not report then eprint("pixflow: " .. tostring(err)) return exit_code(err) end
  local worst = EXIT.ok
  for _, r in ipairs(report.tasks) do
    if r.state ~= "done" then
      if not ui.json then
        print(("%-12s %-40s %-12s %s"):format(r.provider or "?", r.id or "-", ui.status_word(r.status),
          r.path or ""))
        if r.error then print("    " .. tostring(r.error)) end
        if r.action then print("    " .. r.action) end
      end
      if r.status == "unconfirmed" then worst = math.max(worst, EXIT.unconfirmed)
      elseif r.error then worst = math.max(worst, exit_code(r.error)) end
    end
  end
  if not ui.json then
    local open = 0
    for _, r in ipairs(report.tasks) do if r.state ~= "done" then open = open + 1 end end
    print(("%d task%s in %s needed attention"):format(open, open == 1 and "" or "s", report.journal))
  end
  return worst
end

local function batch(o, pos)
  if not pos[1] then eprint(HELP.batch) return EXIT.usage end
  local pixflow = require "pixflow"
  local b = require "pixflow.batch"
  local ui = make_ui(o)
  local items, err = b.load(pos[1])
  if not items then eprint("pixflow: " .. tostring(err)) return EXIT.invalid end
  local base_urls
  if o.sandbox then
    base_urls = {}
    for _, p in ipairs(pixflow.providers()) do base_urls[p] = o.sandbox:gsub("/+$", "") .. "/" .. p end
  end
  -- on a terminal: a block of live lines, one per item, redrawn at most ten times a second
  local drawn, last = 0, 0
  local function draw(rows, final)
    local now = pixflow.now()
    if not final and now - last < 0.1 then return end
    last = now
    local out = {}
    if drawn > 0 then out[1] = ("\27[%dA"):format(drawn) end
    for _, r in ipairs(rows) do
      local t = r.task
      local pct = (t and t.progress) or ((r.status == "downloaded" or r.status == "done") and 100) or 0
      local fill = math.floor(pct * 16 / 100)
      local status = t and not r.finished and (t.phase == "downloading" and "downloading" or t.status) or r.status
      out[#out + 1] = ("\r\27[K%-28s %-11s [%s] %3d%%  %s\n"):format(r.output:match("[^/]*$"),
        r.provider, ("#"):rep(fill) .. ("-"):rep(16 - fill), pct, ui.status_word(status))
    end
    drawn = #rows
    io.stderr:write(table.concat(out))
    io.stderr:flush()
  end
  local live = ui.tty and not ui.json
  local summary, berr = b.run(items, { provider = o.provider, base_urls = base_urls, poll = poll_opts(o),
    concurrency = tonumber(o.concurrency), journal = journal_path(o), timeout = tonumber(o.timeout),
    on_event = function(ev) if not live then ui.event(ev) end end,
    on_tick = live and function(rows) draw(rows) end or nil })
  if live and summary then draw(summary, true) end
  if not summary then eprint("pixflow: " .. tostring(berr)) return exit_code(berr) end
  local worst = EXIT.ok
  for _, r in ipairs(summary) do
    if r.status == "unconfirmed" then worst = math.max(worst, EXIT.unconfirmed)
    elseif r.status ~= "done" and r.status ~= "downloaded" then worst = math.max(worst, exit_code(r.error)) end
  end
  if ui.json then
    for _, r in ipairs(summary) do
      ui.event{ event = "result", output = r.output, provider = r.provider, id = r.id, status = r.status,
                seconds = r.seconds, error = r.error and tostring(r.error) }
    end
  else
    for _, line in ipairs(b.format(summary)) do print(line) end
  end
  return worst
end

-- The capability registry as a table: one row per gateway and model, then what is unverified.
local function providers()
  local pixflow = require "pixflow"
  local caps = require "pixflow.capabilities"
  local function durations(c)
    local d = c.duration.set and table.concat(c.duration.set, "/") or (c.duration.min .. "-" .. c.duration.max)
    for _, r in ipairs(c.duration_rules or {}) do
      d = d .. (" (<=%d at %s%s)"):format(r.max, r.resolution, r.modes and (", " .. table.concat(r.modes, ",")) or "")
    end
    return d
  end
  local rows = { { "provider", "model", "gateway model", "modes", "duration s", "resolutions",
                   "aspect ratios", "refs", "names", "audio", "seed", "local files" } }
  local notes = {}
  for _, name in ipairs(pixflow.providers()) do
    for _, model in ipairs(caps.models(name)) do
      local c = caps.get(name, model)
      local r = c.references
      rows[#rows + 1] = { name, model, c.gateway_model, table.concat(c.modes, ","), durations(c),
        table.concat(c.resolutions, ","),
        c.aspect_ratio == false and "(ignored)" or table.concat(c.aspect_ratios, ","),
        ("%d-%d x%d"):format(r.min, r.max, r.images_per_reference),
        c.reference_names and "yes" or "by position", c.audio and "yes" or "no",
        c.seed and "yes" or "no", c.uploads and "upload" or "URL only" }
      for _, u in ipairs(c.unverified or {}) do
        notes[#notes + 1] = ("  %s %s: %s"):format(name, model, u)
      end
    end
  end
  local width = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do width[i] = math.max(width[i] or 0, utf8.len(cell) or #cell) end
  end
  for n, row in ipairs(rows) do
    local out = {}
    for i, cell in ipairs(row) do out[i] = cell .. (" "):rep(width[i] - (utf8.len(cell) or #cell)) end
    print((table.concat(out, "  "):gsub("%s+$", "")))
    if n == 1 then
      local rule = {}
      for i = 1, #row do rule[i] = ("-"):rep(width[i]) end
      print(table.concat(rule, "  "))
    end
  end
  if #notes > 0 then
    print("\nunverified (inferred, not documented by the gateway; see docs/gateways.md):")
    for _, n in ipairs(notes) do print(n) end
  end
  return EXIT.ok
end

-- The sandbox runs in this process (the C module pixflow.sandbox, built by make and by the
-- rockspec), so that killing `pixflow sandbox` stops the server. Without the module, the program
-- pixflow-sandbox (the checkout's build/, else PATH) is run, told to stop when this process dies.
local function sandbox(args, env)
  local ok, mod = pcall(require, "pixflow.sandbox")
  if ok then
    local code, signal = mod.run(table.unpack(args))
    if signal then eprint("pixflow sandbox: stopped by " .. signal) end
    return code
  end
  local bin = "pixflow-sandbox"
  local built = env.root and (env.root .. "/build/pixflow-sandbox")
  local f = built and io.open(built, "r")
  if f then f:close() bin = built end
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = "'" .. a:gsub("'", "'\\''") .. "'" end
  -- exec: the server is this process's child, so --exit-with-parent ends it with this process
  local done, how, code = os.execute("exec " .. bin .. " --exit-with-parent " .. table.concat(quoted, " "))
  if how == "exit" and code == 127 then
    eprint("pixflow sandbox: neither the module pixflow.sandbox nor the program pixflow-sandbox was found; "
      .. "run `make` in the pixflow checkout, or install pixflow with LuaRocks\n" .. tostring(mod))
    return EXIT.other
  end
  if done then return EXIT.ok end
  return how == "signal" and EXIT.interrupted or code
end

local COMMANDS = { "generate", "status", "download", "cancel", "list", "resume", "batch", "providers",
                   "sandbox", "version", "help" }

local function dispatch(cmd, rest, env)
  if cmd == "sandbox" then return sandbox(rest, env) end
  local o, pos = parse(rest)
  if not o then eprint(("pixflow %s: %s"):format(cmd, pos)) return EXIT.usage end
  if o.help then print(HELP[cmd] or USAGE) return EXIT.ok end
  if cmd == "generate" then return generate(o, pos) end
  if cmd == "status" or cmd == "download" or cmd == "cancel" then return by_id(cmd, o, pos) end
  if cmd == "list" then return list(o) end
  if cmd == "resume" then return resume(o) end
  if cmd == "batch" then return batch(o, pos) end
  if cmd == "providers" then return providers() end
end

function M.main(args, env)
  env = env or {}
  local cmd = args[1]
  local rest = { table.unpack(args, 2) }
  if cmd == nil or cmd == "help" or cmd == "--help" or cmd == "-h" then
    print(USAGE)
    return cmd == nil and EXIT.usage or EXIT.ok
  elseif cmd == "version" or cmd == "--version" then
    print("pixflow " .. require("pixflow")._VERSION)
    return EXIT.ok
  end
  local known = false
  for _, c in ipairs(COMMANDS) do if c == cmd then known = true end end
  if not known then
    local hint = require("pixflow.options").suggest(cmd, COMMANDS)
    eprint(("pixflow: unknown command '%s'%s"):format(cmd, hint and ("; did you mean '" .. hint .. "'?") or ""))
    return EXIT.usage
  end
  -- Ctrl-C (lua turns SIGINT into an error): the task stays at the gateway and in the journal
  local ok, code = pcall(dispatch, cmd, rest, env)
  if ok then return code end
  local msg = tostring(code)
  if msg:find("interrupted!", 1, true) then
    io.stderr:write("\n")
    local o = parse(rest) or {}
    eprint("pixflow: " .. interrupted_hint(o, M.current_task))
    return EXIT.interrupted
  end
  eprint("pixflow: " .. msg)
  return EXIT.other
end

--- The file a download by id writes when no --output is given: "<id>.mp4" in the current
-- directory, whatever the id holds (a slash, "..", a leading dot or a control character never
-- makes it a path elsewhere).
function M.default_output(id)
  local name = tostring(id):gsub("[^%w%-_.]", "_"):gsub("^%.+", "_")
  if name == "" then name = "_" end
  return name .. ".mp4"
end

return M
