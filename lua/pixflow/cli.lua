--- pixflow.cli: the `pixflow` command: generate, status, download, providers, sandbox.
-- Exit codes: 0 success, 1 usage, 2 invalid request, 3 auth or quota, 4 generation failed or
-- moderated, 5 timeout, 6 other runtime failure (network, gateway, disk), 130 interrupted.
local M = {}

local USAGE = [[
usage: pixflow <command> [options]

commands:
  generate   submit a generation, wait for it and download the MP4
  status     show a task's status by id
  download   download a finished task's MP4 by id
  providers  list the gateways and what each model accepts
  sandbox    run the local gateway emulator (pixflow sandbox --help)
  version    print the version
  help       this text; `pixflow <command> --help` for a command's options

The API key comes from the provider's variable (APIMART_API_KEY, ...).]]

local GENERATE_USAGE = [[
usage: pixflow generate --prompt TEXT [options]
  --provider NAME     gateway preset (default apimart)
  --base-url URL      gateway base URL (e.g. the sandbox's http://127.0.0.1:PORT/apimart)
  --model NAME        unified model (v6, ...)
  --prompt TEXT       the prompt; refer to references as @name
  --ref NAME=URL[:TYPE]   a reference image (repeatable); TYPE is subject or background
  --image URL         image mode: the first frame
  --first-frame URL --last-frame URL   transition mode
  --extend TASK_ID    extend mode
  --duration N  --resolution R  --aspect A  --seed N  --negative TEXT  --audio  --watermark
  -o, --output PATH   where to write the MP4 (default out.mp4)
  --timeout SECONDS   give up waiting after this long (default 1800)]]

local EXIT = { ok = 0, usage = 1, invalid = 2, auth = 3, quota = 3, failed = 4, moderated = 4,
               canceled = 4, timeout = 5, other = 6 }

local function exit_code(err)
  return EXIT[err and err.kind] or EXIT.other
end

local function eprint(...)
  io.stderr:write(table.concat({ ... }, " "), "\n")
end

-- Parse "--flag value" / "--flag=value" / boolean flags into a table; positional into list.
local function parse(args, booleans)
  local out, pos = { refs = {} }, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local k, v = a:match("^%-%-([%w-]+)=(.*)$")
    if not k then k = a:match("^%-%-([%w-]+)$") or (a == "-o" and "output") end
    if k then
      if booleans[k] then
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

-- A whole-number flag: its value, or nil and a usage message.
local function whole(s, name)
  local n = s and math.tointeger(tonumber(s))
  if s ~= nil and not n then return nil, ("--%s: %q is not a whole number"):format(name, s) end
  return n
end

local function client_for(o)
  local pixflow = require "pixflow"
  return pixflow.new{ provider = o.provider or "apimart", base_url = o["base-url"], model = o.model }
end

local function progress_printer()
  local tty = os.execute("test -t 2") == true
  local t0 = require("pixflow").now()
  return function(t)
    local line = ("%s %s  %-10s %3s%%  %5.1f s"):format(t.provider, t.id or "(submitting)", t.status,
      t.progress and tostring(t.progress) or "--", require("pixflow").now() - t0)
    if tty then io.stderr:write("\r", line, "   ") else io.stderr:write(line, "\n") end
    io.stderr:flush()
  end
end

local function generate(args)
  local o, err = parse(args, { audio = true, watermark = true, help = true })
  if not o then eprint("pixflow generate: " .. err) return EXIT.usage end
  if o.help then print(GENERATE_USAGE) return EXIT.ok end
  if not o.prompt then eprint("pixflow generate: --prompt is required\n" .. GENERATE_USAGE) return EXIT.usage end
  local req = { prompt = o.prompt, image = o.image, first_frame = o["first-frame"],
                last_frame = o["last-frame"], extend_from = o.extend, resolution = o.resolution,
                aspect_ratio = o.aspect, negative_prompt = o.negative,
                audio = o.audio or nil, watermark = o.watermark or nil }
  local werr
  req.duration, werr = whole(o.duration, "duration")
  if not werr then req.seed, werr = whole(o.seed, "seed") end
  if werr then eprint("pixflow generate: " .. werr) return EXIT.usage end
  if #o.refs > 0 then
    req.references = {}
    for _, r in ipairs(o.refs) do
      local name, rest = r:match("^([^=]+)=(.+)$")
      if not name then eprint(("pixflow generate: --ref %q is not NAME=URL[:TYPE]"):format(r)) return EXIT.usage end
      local url, typ = rest:match("^(.-):(subject)$")
      if not url then url, typ = rest:match("^(.-):(background)$") end
      req.references[#req.references + 1] = { name = name, image = url or rest, type = typ }
    end
  end
  local client, cerr = client_for(o)
  if not client then eprint("pixflow: " .. tostring(cerr)) return exit_code(cerr) end
  local task, serr = client:submit(req)
  if not task then eprint("pixflow: " .. tostring(serr)) return exit_code(serr) end
  local timeout = tonumber(o.timeout) or 1800
  local path, derr = task:download(o.output or "out.mp4", { timeout = timeout, on_progress = progress_printer() })
  io.stderr:write("\n")
  if not path then
    eprint("pixflow: " .. tostring(derr))
    if task.id then eprint(("pixflow: task id %s (pixflow status %s --provider %s)"):format(task.id, task.id, task.provider)) end
    return exit_code(derr)
  end
  print(path)
  return EXIT.ok
end

local function by_id(cmd, args)
  local o, pos = parse(args, { help = true })
  if not o then eprint("pixflow " .. cmd .. ": " .. pos) return EXIT.usage end
  if o.help or not pos[1] then
    print(("usage: pixflow %s TASK_ID [--provider NAME] [--base-url URL]%s"):format(cmd,
      cmd == "download" and " [-o PATH]" or ""))
    return o.help and EXIT.ok or EXIT.usage
  end
  local client, cerr = client_for(o)
  if not client then eprint("pixflow: " .. tostring(cerr)) return exit_code(cerr) end
  local task = client:task(pos[1])
  if cmd == "status" then
    -- one status read: pump until the first poll answered
    local deadline = require("pixflow").now() + (tonumber(o.timeout) or 60)
    while task.status == "queued" and task.progress == nil and not task.halted
          and require("pixflow").now() < deadline do
      client:poll(0.5)
    end
    if task.halted then eprint("pixflow: " .. tostring(task.error)) return exit_code(task.error) end
    print(("%s %s %s%s%s"):format(task.provider, task.id, task.status,
      task.progress and ("  " .. task.progress .. "%") or "",
      task.video_url and ("  " .. task.video_url) or ""))
    if task.error then print(tostring(task.error)) end
    return EXIT.ok
  end
  local path, err = task:download(o.output or (pos[1] .. ".mp4"), { timeout = tonumber(o.timeout) })
  if not path then eprint("pixflow: " .. tostring(err)) return exit_code(err) end
  print(path)
  return EXIT.ok
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

local function sandbox(args, env)
  -- the binary built beside this checkout, else one on PATH
  local bin = "pixflow-sandbox"
  local built = env.root and (env.root .. "/build/pixflow-sandbox")
  local f = built and io.open(built, "r")
  if f then f:close() bin = built end
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = "'" .. a:gsub("'", "'\\''") .. "'" end
  local ok, how, code = os.execute(bin .. " " .. table.concat(quoted, " "))
  if how == "exit" and code == 127 then
    eprint("pixflow sandbox: pixflow-sandbox was not found; run `make` in the pixflow checkout")
    return EXIT.other
  end
  if ok then return EXIT.ok end
  return how == "signal" and 130 or code
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
  elseif cmd == "generate" then return generate(rest)
  elseif cmd == "status" or cmd == "download" then return by_id(cmd, rest)
  elseif cmd == "providers" then return providers()
  elseif cmd == "sandbox" then return sandbox(rest, env)
  end
  local hint = require("pixflow.options").suggest(cmd, { "generate", "status", "download", "providers", "sandbox", "version", "help" })
  eprint(("pixflow: unknown command '%s'%s"):format(cmd, hint and ("; did you mean '" .. hint .. "'?") or ""))
  return EXIT.usage
end

return M
