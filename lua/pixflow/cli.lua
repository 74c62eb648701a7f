--- pixflow.cli: the `pixflow` command. `pixflow help` lists the commands, `pixflow CMD --help`
-- each one's options. Tasks go through the journal ($XDG_STATE_HOME/pixflow/journal.db) so
-- that an interrupted run can be finished with `pixflow resume`.
local options = require "pixflow.options"
-- pixflow.guard (escaping, JSON, path checks) loads the C core: only when a command needs it, so
-- that `pixflow help` runs before anything is built
local guard = setmetatable({}, { __index = function(_, k) return require("pixflow.guard")[k] end })

local M = {}

local EXIT = { ok = 0, usage = 1, invalid = 2, auth = 3, quota = 3, failed = 4, moderated = 4,
               canceled = 4, timeout = 5, unconfirmed = 7, other = 6, interrupted = 130 }
M.EXIT = EXIT

-- ------------------------------------------------------------ options: one table per command

-- Each option once: { name, ARG (nil for a switch), what it does, short = letter, many = true
-- (repeatable), kind = how its value is checked }. A command's table (OPTIONS below) lists the
-- ones it takes: the parser accepts those and no others, and its help lists them.
local OPT = {
  prompt = { "prompt", "TEXT", "the prompt; refer to references as @name" },
  ref = { "ref", "NAME=IMAGE[:TYPE]", "a reference image (URL or local file; TYPE subject or background); repeatable",
          many = true },
  model = { "model", "NAME", "unified model (v4.5, v5, v5.5, v5.6, v6, c1)" },
  image = { "image", "IMAGE", "image mode: the first frame" },
  ["first-frame"] = { "first-frame", "IMAGE", "transition mode: the first frame (with --last-frame)" },
  ["last-frame"] = { "last-frame", "IMAGE", "transition mode: the last frame" },
  extend = { "extend", "TASK_ID", "extend mode: the task to continue" },
  duration = { "duration", "N", "seconds of video", kind = "whole" },
  resolution = { "resolution", "R", "360p, 540p, 720p or 1080p (as the model allows)" },
  aspect = { "aspect", "A", "aspect ratio: 16:9, 9:16, 1:1, ... (as the model allows)" },
  seed = { "seed", "N", "the seed", kind = "whole" },
  negative = { "negative", "TEXT", "negative prompt" },
  count = { "count", "N", "videos per task (where the gateway makes several)", kind = "whole" },
  audio = { "audio", nil, "generate audio" },
  watermark = { "watermark", nil, "ask for the gateway's watermark" },
  ["expand-prompt"] = { "expand-prompt", nil, "let the gateway expand the prompt" },
  output = { "output", "PATH", "where to write the MP4", short = "o" },
  timeout = { "timeout", "SECONDS", "stop waiting after this long; the task goes on", kind = "seconds" },
  concurrency = { "concurrency", "N", "tasks in flight at once", kind = "count" },
  provider = { "provider", "NAME", "gateway preset (default apimart)" },
  ["base-url"] = { "base-url", "URL", "the gateway's base URL", kind = "url" },
  sandbox = { "sandbox", "URL", "use a running sandbox: the base URL becomes URL/<provider>", kind = "url" },
  journal = { "journal", "PATH", "journal database (default $XDG_STATE_HOME/pixflow/journal.db; a journal.jsonl "
              .. "of an earlier pixflow beside it is imported once)" },
  events = { "events", nil, "every record of the journal, one JSON object per line" },
  ["no-journal"] = { "no-journal", nil, "keep no journal" },
  trace = { "trace", "PATH", "append one JSON line per HTTP request to PATH (no key, no signed query)" },
  poll = { "poll", "SECONDS", "status poll interval (default: the gateway's; 0.5 with --sandbox)", kind = "interval" },
  json = { "json", nil, "one JSON object per event per line (off a terminal the default is plain lines)" },
  help = { "help", nil, "this help", short = "h" },
}

-- opt with another description (what it means for one command)
local function says(opt, text)
  local o = {}
  for k, v in pairs(opt) do o[k] = v end
  o[3] = text
  return o
end

local COMMON = { OPT.provider, OPT["base-url"], OPT.sandbox, OPT.journal, OPT["no-journal"], OPT.trace,
                 OPT.poll, OPT.json }

local OPTIONS = {
  generate = { OPT.prompt, OPT.ref, OPT.model, OPT.image, OPT["first-frame"], OPT["last-frame"], OPT.extend,
               OPT.duration, OPT.resolution, OPT.aspect, OPT.seed, OPT.negative, OPT.count, OPT.audio,
               OPT.watermark, OPT["expand-prompt"], says(OPT.output, "where to write the MP4 (default out.mp4)"),
               says(OPT.timeout, "stop waiting after this long (default 1800); the task goes on"),
               table.unpack(COMMON) },
  status = { says(OPT.timeout, "wait at most this long for a first answer (default 60)"), table.unpack(COMMON) },
  download = { says(OPT.output, "where to write the MP4 (default TASK_ID.mp4)"),
               says(OPT.timeout, "stop waiting after this long"), table.unpack(COMMON) },
  cancel = { says(OPT.timeout, "wait at most this long for the gateway's answer (default 60)"), table.unpack(COMMON) },
  list = { OPT.journal, OPT.json, OPT.events },
  forget = { OPT.journal },
  resume = { OPT.journal, says(OPT.timeout, "stop waiting after this long (default 1800); run it again later"),
             OPT.sandbox, OPT.poll, OPT.json },
  batch = { OPT.concurrency, says(OPT.provider, "the gateway of items that name none (default apimart)"),
            OPT.sandbox, OPT.journal, OPT["no-journal"], OPT.poll,
            says(OPT.timeout, "stop waiting after this long"), OPT.json },
  providers = {},
}
for _, list in pairs(OPTIONS) do list[#list + 1] = OPT.help end

-- What each command takes besides options.
local POSITIONAL = { generate = {}, status = { "TASK_ID" }, download = { "TASK_ID" }, cancel = { "TASK_ID" },
                     list = {}, forget = { "KEY_OR_TASK_ID" }, resume = {}, batch = { "MANIFEST" },
                     providers = {} }

local function option_lines(list)
  local lines = {}
  for _, o in ipairs(list) do
    local left = (o.short and ("-" .. o.short .. ", ") or "") .. "--" .. o[1] .. (o[2] and (" " .. o[2]) or "")
    lines[#lines + 1] = ("  %-26s %s"):format(left, o[3])
  end
  return table.concat(lines, "\n")
end

local USAGE = [[
usage: pixflow <command> [options]

commands:
  generate   submit a generation, follow it, and download the MP4
  status     show a task's status by id
  download   download a finished task's MP4 by id
  cancel     ask the gateway to cancel a task (DashScope, while queued)
  list       the journal's tasks and where each one stands
  forget     drop a task from the journal's unfinished work (its video is given up)
  resume     finish what an interrupted run left: poll and download, never resubmit
  batch      run many generations from a JSON or CSV manifest
  providers  the gateways and what each model accepts
  sandbox    run the local gateway emulator
  version    print the version

common options (`pixflow CMD --help` lists what each command takes; any other option is refused):
]] .. option_lines(COMMON) .. [[


The API key comes from the provider's variable: PIXVERSE_API_KEY, QUICKROUTER_API_KEY,
APIMART_API_KEY, DASHSCOPE_API_KEY, JIEKOU_API_KEY, BAICAI_API_KEY. NO_COLOR is honoured.

exit codes: 0 success, 1 usage, 2 invalid request, 3 auth or quota, 4 generation failed,
moderated or canceled, 5 timeout (the task may still finish: pixflow resume), 6 network,
gateway or disk failure, 7 unconfirmed submit, 130 interrupted (the task is in the journal).]]

local HELP_HEAD = {
  generate = "usage: pixflow generate --prompt TEXT [options]",
  status = "usage: pixflow status TASK_ID [options]",
  download = "usage: pixflow download TASK_ID [options]",
  cancel = "usage: pixflow cancel TASK_ID [options]",
  list = "usage: pixflow list [options]",
  forget = "usage: pixflow forget KEY|TASK_ID [options]\n  drop a task from what resume and batch follow (its video is given up)",
  resume = "usage: pixflow resume [options]",
  batch = "usage: pixflow batch MANIFEST [options]",
  providers = "usage: pixflow providers",
}
local HELP_TAIL = {
  batch = [[
  MANIFEST is JSON (a list of requests, each with "output" and optionally "provider", or
  {"defaults": {...}, "items": [...]}) or CSV (a header row: output, provider, model, prompt,
  references as "name=image[:type];...", duration, resolution, aspect_ratio, seed, ...).
  Running it again skips what is done and never resubmits a task that may be billed.]],
}
local HELP = {
  sandbox = "usage: pixflow sandbox [--port N] [--task-seconds S] [--seed N] [--exit-with-parent]",
}
for cmd, head in pairs(HELP_HEAD) do
  HELP[cmd] = head .. (#OPTIONS[cmd] > 0 and ("\n" .. option_lines(OPTIONS[cmd])) or "")
    .. (HELP_TAIL[cmd] and ("\n" .. HELP_TAIL[cmd]) or "")
end

local function eprint(...)
  io.stderr:write(table.concat({ ... }, " "), "\n")
end

-- An error for the terminal: gateway text in it has its control characters escaped.
local function say_error(err)
  eprint("pixflow: " .. guard.text(tostring(err), true))
end

local function exit_code(err)
  if not err then return EXIT.other end
  return EXIT[err.kind] or EXIT.other
end

-- Names people try for an option that is spelt otherwise here.
local ALIASES = { ["aspect-ratio"] = "aspect", ratio = "aspect", ["negative-prompt"] = "negative",
                  ["extend-from"] = "extend", reference = "ref", references = "ref", out = "output",
                  ["output-path"] = "output", expand = "expand-prompt", first = "first-frame",
                  ["last"] = "last-frame", workers = "concurrency", jobs = "concurrency", url = "base-url" }

-- "; did you mean --x?" for an option cmd does not take, or what else to say about it.
local function unknown_option(cmd, given)
  local name = given:gsub("^%-+", ""):gsub("=.*$", "")
  local valid, names = {}, {}
  for _, o in ipairs(OPTIONS[cmd]) do valid[o[1]] = true; names[#names + 1] = o[1] end
  local n = name:lower():gsub("_", "-")
  local hint = valid[n] and n or (ALIASES[n] and valid[ALIASES[n]] and ALIASES[n])
  if not hint then
    -- a longer or shorter form of one option (--aspect-ratio, --conc)
    local found
    for _, v in ipairs(names) do
      if #v >= 3 and #n >= 3 and (n:sub(1, #v) == v or v:sub(1, #n) == n) then
        if found then found = false break end
        found = v
      end
    end
    hint = found or options.suggest(n, names)
  end
  local msg = ("pixflow %s: unknown option %s"):format(cmd, guard.shown(given))
  if hint then
    msg = msg .. ("; did you mean --%s?"):format(hint)
  elseif n == "api-key" or n == "key" then
    msg = msg .. "; the API key comes from the provider's environment variable (APIMART_API_KEY, ...), never the command line"
  else
    for other, list in pairs(OPTIONS) do
      for _, o in ipairs(list) do
        if o[1] == n and other ~= cmd then msg = msg .. (" (it is an option of pixflow %s)"):format(other) break end
      end
      if msg:find("it is an option", 1, true) then break end
    end
  end
  return msg .. (msg:find("?$") and "" or ".") .. (" Nothing was sent; `pixflow %s --help` lists its options."):format(cmd)
end

-- The value of an option, checked by its kind: nil and the problem when it is not usable.
local function check_value(o, v)
  local kind = o.kind
  local function bad(what) return ("--%s: %s is not %s"):format(o[1], guard.shown(v), what) end
  if kind == "whole" then
    if not math.tointeger(tonumber(v)) then return bad("a whole number") end
  elseif kind == "count" then
    local n = math.tointeger(tonumber(v))
    if not n or n < 1 then return bad("a whole number of at least 1") end
  elseif kind == "seconds" or kind == "interval" then
    local n = tonumber(v)
    if not n or n ~= n or n == math.huge or n < 0 or (kind == "interval" and n == 0) then
      return bad(kind == "interval" and "a number of seconds above 0" or "a number of seconds (0 or more)")
    end
  elseif kind == "url" then
    if not guard.is_url(v) then return bad("an http:// or https:// URL") end
  end
  return nil
end

-- "--flag value", "--flag=value", switches, -o and -h; "--" ends the options. Every option must be
-- one of cmd's (OPTIONS); a switch takes no value; an option is given once (--ref as often as
-- needed); positional arguments are as many as cmd takes. Returns the options and the
-- positional arguments, or nil and the message for the user.
local function parse(args, cmd)
  local list = OPTIONS[cmd] or {}
  local by_name, by_short = {}, {}
  for _, o in ipairs(list) do
    by_name[o[1]] = o
    if o.short then by_short[o.short] = o end
  end
  local out, pos = { refs = {} }, {}
  local i, rest = 1, false
  while i <= #args do
    local a = args[i]
    if rest or a == "-" or a:sub(1, 1) ~= "-" then
      pos[#pos + 1] = a
    elseif a == "--" then
      rest = true
    else
      local k, v = a:match("^%-%-([^=]+)=(.*)$")
      if not k then k = a:match("^%-%-(.+)$") end
      local o
      if k then o = by_name[k] else o = by_short[a:sub(2)] end
      if not o then return nil, unknown_option(cmd, a) end
      k = o[1]
      if not o[2] then
        if v ~= nil then return nil, ("pixflow %s: --%s is a switch and takes no value (got %s)"):format(cmd, k, guard.shown(v)) end
        out[k] = true
      else
        if v == nil then
          i = i + 1
          v = args[i]
          if v == nil then return nil, ("pixflow %s: option --%s needs a value"):format(cmd, k) end
          -- "--journal --help": the next word is one of this command's options, not a value
          local nk = v:match("^%-%-([^=]+)") or (v:match("^%-(%a)$"))
          if nk and (by_name[nk] or by_short[nk]) then
            return nil, ("pixflow %s: option --%s needs a value, but the next word is the option %s")
              :format(cmd, k, guard.shown(v))
          end
        end
        local problem = check_value(o, v)
        if problem then return nil, ("pixflow %s: %s"):format(cmd, problem) end
        if o.many then
          out.refs[#out.refs + 1] = v
        elseif out[k] ~= nil then
          return nil, ("pixflow %s: --%s is given twice (%s, then %s): give it once"):format(cmd, k,
            guard.shown(out[k]), guard.shown(v))
        else
          out[k] = v
        end
      end
    end
    i = i + 1
  end
  local takes = POSITIONAL[cmd]
  if takes and #pos > #takes and not out.help then
    return nil, ("pixflow %s: unexpected argument %s (%s); quote a value that has spaces, "
      .. "such as --prompt 'a b c'"):format(cmd, guard.shown(pos[#takes + 1]),
      #takes == 0 and "it takes options only" or ("it takes " .. table.concat(takes, " ") .. " and options"))
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
  local json = o.json or os.execute("test -t 1") ~= true
  local tty = os.execute("test -t 2") == true
  local color = tty and not os.getenv("NO_COLOR")
  local ui = { json = json and o.json, tty = tty }
  local function paint(code, s) return color and ("\27[" .. code .. "m" .. s .. "\27[0m") or s end
  local COLORS = { succeeded = "32", downloaded = "32", failed = "31", moderated = "31", canceled = "33",
                   unconfirmed = "33" }
  function ui.event(ev)
    if o.json then
      io.stdout:write(guard.json(ev), "\n")   -- never raises: NaN or Inf from a gateway is null
      io.stdout:flush()
    elseif not tty and ev.event ~= "progress" then
      local parts = { guard.text(ev.event) }
      for _, k in ipairs({ "provider", "id", "status", "progress", "output", "path", "message", "error" }) do
        if ev[k] ~= nil then parts[#parts + 1] = ("%s=%s"):format(k, guard.text(ev[k])) end
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
        io.stderr:write(("%s %s %s\n"):format(t.provider, guard.text(t.id or "-"), guard.text(t.status)))
      end
      return
    end
    local width = 24
    local fill = math.floor(pct * width / 100)
    local bar = ("#"):rep(fill) .. ("-"):rep(width - fill)
    local bytes = t.bytes > 0 and ("  %.1f MB"):format(t.bytes / 1048576) or ""
    io.stderr:write(("\r\27[K%s %s %-11s [%s] %3d%%  %5.1f s%s"):format(t.provider, guard.text(t.id or "(submitting)"),
      paint(COLORS[t.status] or "36", t.phase == "downloading" and "downloading" or t.status), bar, pct,
      now - started, bytes))
    io.stderr:flush()
  end
  function ui.finish_line() if tty and not o.json then io.stderr:write("\n") end end
  function ui.status_word(s) return paint(COLORS[s] or "0", guard.text(s)) end
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

-- A client for the command line's options. What pixflow.new raises for a bad option (an unknown
-- model, a base URL it cannot use) is the user's input here: an error of kind "usage" (exit 1).
local function new_client(opts)
  local pixflow = require "pixflow"
  local ok, c, err = pcall(pixflow.new, opts)
  if ok then return c, err end
  local msg = tostring(c)
  local inner = msg:match("bad argument #%d+ to 'new' %((.*)%)$")
  if not inner then error(c, 0) end                     -- not a bad option (Ctrl-C, say): as it was
  return nil, require("pixflow.errors").new("usage", inner, { hint = "fix the option; nothing was sent" })
end

local function client_for(o, provider)
  provider = provider or o.provider or "apimart"
  local base = o["base-url"] or (o.sandbox and (o.sandbox:gsub("/+$", "") .. "/" .. provider))
  local opts = { provider = provider, base_url = base, model = o.model, journal = journal_path(o),
                 poll = poll_opts(o), trace = o.trace }
  local client, err = new_client(opts)
  if client or not (err and err.kind == "auth" and tostring(err.message):find("^no API key")) then
    return client, err
  end
  if o.sandbox and not o["base-url"] then
    -- --sandbox URL and no key set: the request goes only to that sandbox, which takes any key
    opts.api_key = M.SANDBOX_KEY
    return new_client(opts)
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
      .. "the result; nothing was canceled."):format(guard.text(task.id), task.provider,
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
      if not name then eprint(("pixflow generate: --ref %s is not NAME=IMAGE[:TYPE]"):format(guard.shown(r))) return EXIT.usage end
      local url, typ = rest:match("^(.-):(subject)$")
      if not url then url, typ = rest:match("^(.-):(background)$") end
      req.references[#req.references + 1] = { name = name, image = url or rest, type = typ }
    end
  end
  local ui = make_ui(o)
  local client, cerr = client_for(o)
  if not client then say_error(cerr) return exit_code(cerr) end
  local output = o.output or "out.mp4"
  local task, serr = client:submit(req, { output = output })
  if not task then say_error(serr) return exit_code(serr) end
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
    if not ui.json then say_error(derr) end
    return exit_code(derr)
  end
  -- the video is saved; a journal that could not record it must not go unsaid (the id is what
  -- the user needs to find the task again)
  local jerr = task.journal_error
  if jerr then
    ui.event{ event = "warning", provider = task.provider, id = task.id, message = tostring(jerr) }
    if not ui.json then
      eprint(("pixflow: warning: %s. The video is saved at %s; keep the task id %s (%s)"):format(
        guard.text(tostring(jerr)), guard.text(path), guard.text(task.id or "-"), task.provider))
    end
  end
  ui.event{ event = "done", provider = task.provider, id = task.id, path = path, cost = task.cost,
            costs = task.costs, journal_error = jerr and tostring(jerr) or nil }
  if not ui.json then print(guard.text(path)) end
  client:close()
  return EXIT.ok
end

local function by_id(cmd, o, pos)
  if not pos[1] then eprint(HELP[cmd]) return EXIT.usage end
  local ui = make_ui(o)
  local client, cerr = client_for(o)
  if not client then say_error(cerr) return exit_code(cerr) end
  local task = client:task(pos[1])
  M.current_task = task
  if cmd == "cancel" then
    local ok, err = task:cancel{ timeout = tonumber(o.timeout) or 60 }
    if not ok then say_error(err) return exit_code(err) end
    ui.event{ event = "canceled", provider = task.provider, id = task.id }
    if not ui.json then print(("%s %s: the gateway accepted the cancel"):format(task.provider, guard.text(task.id))) end
    return EXIT.ok
  end
  if cmd == "status" then
    -- wait for a first answer: a status other than queued, a progress, or a halt
    require("pixflow.follow").loop{ clients = { client }, slice = 0.5,
      deadline = require("pixflow").now() + (tonumber(o.timeout) or 60),
      check = function() return not (task.status == "queued" and task.progress == nil and not task.halted) end,
      expired = function() end }
    if task.halted then say_error(task.error) return exit_code(task.error) end
    ui.event{ event = "status", provider = task.provider, id = task.id, status = task.status,
              progress = task.progress, video_url = task.video_url, error = task.error and tostring(task.error) }
    if not ui.json then
      print(("%s %s %s%s%s"):format(task.provider, guard.text(task.id), ui.status_word(task.status),
        task.progress and ("  " .. task.progress .. "%") or "", task.video_url and ("  " .. guard.text(task.video_url)) or ""))
      if task.error then print(guard.text(tostring(task.error), true)) end
    end
    return EXIT.ok
  end
  local started = require("pixflow").now()
  local path, err = task:download(o.output or M.default_output(pos[1]), { timeout = tonumber(o.timeout),
    on_progress = function(t) ui.progress(t, started) end })
  ui.finish_line()
  if not path then say_error(err) return exit_code(err) end
  ui.event{ event = "done", provider = task.provider, id = task.id, path = path }
  if not ui.json then print(guard.text(path)) end
  return EXIT.ok
end

local function list(o)
  local journal = require "pixflow.journal"
  local path = journal_path(o) or journal.default_path()
  local j, jerr = journal.open(path)
  if not j then say_error(jerr) return EXIT.other end
  local ui = make_ui(o)
  for _, w in ipairs(j.warnings) do eprint("pixflow: warning: " .. guard.text(w)) end
  if o.events then
    -- the whole history, one JSON object per record (the old JSONL journal's lines)
    local events, eerr = j:events()
    j:close()
    if not events then say_error(eerr) return EXIT.other end
    for _, ev in ipairs(events) do io.stdout:write(guard.json(ev), "\n") end
    return EXIT.ok
  end
  local tasks, terr = j:tasks()
  j:close()
  if not tasks then say_error(terr) return EXIT.other end
  for _, t in ipairs(tasks) do
    local status = t.downloaded and "downloaded" or t.status
      or (t.state == "claimed" and "running") or (t.id and "open") or t.state
    if ui.json then
      ui.event{ event = "task", key = t.key, provider = t.provider, base_url = t.base_url, model = t.model,
                id = t.id, status = status, state = t.state, stage = t.stage, output = t.output,
                path = t.downloaded, label = t.label, submitted = t.t, updated = t.updated,
                request = t.request, error = t.error,
                owner = t.owner and t.owner.alive and t.owner.pid or nil }
    else
      local where = guard.text(t.downloaded or t.output or "")
      if t.state == "claimed" and t.owner then where = where .. ("  (pid %s)"):format(tostring(t.owner.pid)) end
      local t0 = type(t.t) == "number" and t.t >= 0 and t.t <= 32503680000 and t.t or 0
      print(("%-20s %-12s %-40s %-12s %s"):format(os.date("%Y-%m-%d %H:%M:%S", math.floor(t0)),
        guard.text(t.provider or "?"), guard.text(t.id or "-"), ui.status_word(status), where))
    end
  end
  if not ui.json and #tasks == 0 then print("(no tasks in " .. guard.text(j.path) .. ")") end
  return EXIT.ok
end

-- Drop a task from what resume and batch would follow (its video is given up).
local function forget(o, pos)
  local journal = require "pixflow.journal"
  local j, jerr = journal.open(journal_path(o) or journal.default_path())
  if not j then say_error(jerr) return EXIT.other end
  local tasks, terr = j:tasks()
  if not tasks then j:close() say_error(terr) return EXIT.other end
  local hit
  for _, t in ipairs(tasks) do
    if t.key == pos[1] or (t.id and t.id == pos[1]) then hit = t end
  end
  if not hit then
    j:close()
    eprint(("pixflow forget: no task with key or id %s in %s"):format(guard.shown(pos[1]), guard.text(j.path)))
    return EXIT.usage
  end
  if hit.state == "claimed" then
    j:close()
    eprint(("pixflow forget: a running pixflow process (pid %s) follows task %s; stop it first")
      :format(tostring(hit.owner and hit.owner.pid), guard.shown(pos[1])))
    return EXIT.usage
  end
  local ok, err = j:record("forgotten", hit.key)
  j:close()
  if not ok then say_error(err) return EXIT.other end
  print(("forgot task %s (%s %s): resume and batch leave it alone now"):format(hit.key,
    guard.text(hit.provider or "?"), guard.text(hit.id or "-")))
  return EXIT.ok
end

local function resume(o)
  local pixflow = require "pixflow"
  local ui = make_ui(o)
  local report, err = pixflow.resume{ journal = journal_path(o) or require("pixflow.journal").default_path(),
    sandbox = o.sandbox and { url = o.sandbox:gsub("/+$", ""), key = M.SANDBOX_KEY } or nil,
    timeout = tonumber(o.timeout), poll = poll_opts(o), on_event = function(ev) ui.event(ev) end }
  if not report then say_error(err) return exit_code(err) end
  local worst = EXIT.ok
  for _, r in ipairs(report.tasks) do
    if r.state ~= "done" then
      if not ui.json then
        print(("%-12s %-40s %-12s %s"):format(guard.text(r.provider or "?"), guard.text(r.id or "-"),
          ui.status_word(r.status), guard.text(r.path or "")))
        if r.error then print("    " .. guard.text(tostring(r.error), true)) end
        if r.action then print("    " .. guard.text(r.action, true)) end
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
  if not items then say_error(err) return EXIT.invalid end
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
      out[#out + 1] = ("\r\27[K%-28s %-11s [%s] %3d%%  %s\n"):format(guard.text(r.output:match("[^/]*$")),
        r.provider, ("#"):rep(fill) .. ("-"):rep(16 - fill), pct, ui.status_word(status))
    end
    drawn = #rows
    io.stderr:write(table.concat(out))
    io.stderr:flush()
  end
  local live = ui.tty and not ui.json
  local summary, berr = b.run(items, { provider = o.provider, base_urls = base_urls, poll = poll_opts(o),
    sandbox = o.sandbox and { url = o.sandbox:gsub("/+$", ""), key = M.SANDBOX_KEY } or nil,
    concurrency = tonumber(o.concurrency), journal = journal_path(o), timeout = tonumber(o.timeout),
    on_event = function(ev) if not live then ui.event(ev) end end,
    on_tick = live and function(rows) draw(rows) end or nil })
  if live and summary then draw(summary, true) end
  if not summary then say_error(berr) return exit_code(berr) end
  local worst = EXIT.ok
  for _, r in ipairs(summary) do
    if r.status == "unconfirmed" then worst = math.max(worst, EXIT.unconfirmed)
    elseif r.status == "claimed" then worst = math.max(worst, EXIT.timeout)   -- another run has it
    elseif r.status ~= "done" and r.status ~= "downloaded" then worst = math.max(worst, exit_code(r.error)) end
  end
  if ui.json then
    for _, r in ipairs(summary) do
      ui.event{ event = "result", output = r.output, provider = r.provider, id = r.id, status = r.status,
                seconds = r.seconds, error = r.error and tostring(r.error) }
    end
  else
    for _, line in ipairs(b.format(summary)) do print(guard.text(line, true)) end
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

local COMMANDS = { "generate", "status", "download", "cancel", "list", "forget", "resume", "batch",
                   "providers", "sandbox", "version", "help" }

local function dispatch(cmd, rest, env)
  if cmd == "sandbox" then return sandbox(rest, env) end
  local o, pos = parse(rest, cmd)
  if not o then eprint(pos) return EXIT.usage end
  if o.help then print(HELP[cmd] or USAGE) return EXIT.ok end
  if o.provider then
    local providers = require "pixflow.providers"
    providers.config()                                   -- the user's own presets count too
    if not providers.preset(o.provider) then
      local names = providers.names()
      local hint = options.suggest(o.provider, names)
      eprint(("pixflow %s: --provider: unknown provider %s%s (known: %s). Nothing was sent."):format(cmd,
        guard.shown(o.provider), hint and ("; did you mean " .. hint .. "?") or "", table.concat(names, ", ")))
      return EXIT.usage
    end
  end
  if cmd == "generate" then return generate(o, pos) end
  if cmd == "status" or cmd == "download" or cmd == "cancel" then return by_id(cmd, o, pos) end
  if cmd == "list" then return list(o) end
  if cmd == "forget" then return forget(o, pos) end
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
    eprint(("pixflow: unknown command '%s'%s"):format(guard.text(cmd), hint and ("; did you mean '" .. hint .. "'?") or ""))
    return EXIT.usage
  end
  -- Ctrl-C (lua turns SIGINT into an error): the task stays at the gateway and in the journal
  local ok, code = pcall(dispatch, cmd, rest, env)
  if ok then return code end
  local msg = tostring(code)
  if msg:find("interrupted!", 1, true) then
    io.stderr:write("\n")
    local o = parse(rest, cmd) or {}
    eprint("pixflow: " .. interrupted_hint(o, M.current_task))
    return EXIT.interrupted
  end
  eprint("pixflow: " .. guard.text(msg, true))
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
