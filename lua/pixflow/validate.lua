--- pixflow.validate: the unified request, checked against a gateway's capabilities before any
-- network I/O. Wrong types and unknown fields are misuse and raise; values the gateway cannot
-- honour are collected, every one of them, into a single "invalid" error.
local options = require "pixflow.options"
local errors = require "pixflow.errors"
local core = require "pixflow.core"
local guard = require "pixflow.guard"
local fs = core._fs

local M = {}

local MODES = require("pixflow.capabilities").MODES

local REQUEST = {
  model = "string", prompt = "string", references = "table", mode = "string",
  duration = "whole", resolution = "string", aspect_ratio = "string",
  image = "string", first_frame = "string", last_frame = "string",
  extend_from = { "string", "userdata", "table" },
  negative_prompt = "string", seed = "whole", audio = "boolean", watermark = "boolean",
  count = "whole", expand_prompt = "boolean",
}
local REFERENCE = { name = "string", image = "string", images = "table", type = "string" }
local IMAGE_EXT = { png = true, jpg = true, jpeg = true, webp = true, gif = true }
M.MAX_IMAGE_BYTES = 20 * 1024 * 1024   -- every gateway's documented cap is 20 MB or more
local REF_TYPES = { "subject", "background" }

-- A name in a prompt: '@' at the start or after a non-name byte, then name bytes (letters,
-- digits, '_', '-' and UTF-8 bytes). The rule is the core's (csrc/adapters/common.c,
-- pf_name_byte, which the adapters use to find names): core._name_bytes() lists those bytes, and
-- this character class is made from that list.
local function byte_class(bytes)
  local set = {}
  for i = 1, #bytes do set[bytes:byte(i)] = true end
  local function plain(b) return b >= 128 or string.char(b):find("%w") ~= nil end
  local function esc(b) return plain(b) and string.char(b) or ("%" .. string.char(b)) end
  local out, b = {}, 1
  while b < 256 do
    if set[b] then
      local e = b
      while e + 1 < 256 and set[e + 1] do e = e + 1 end
      if e > b + 1 and plain(b) and plain(e) then
        out[#out + 1] = string.char(b) .. "-" .. string.char(e)
      else
        for x = b, e do out[#out + 1] = esc(x) end
      end
      b = e + 1
    else
      b = b + 1
    end
  end
  return "[" .. table.concat(out) .. "]"
end
local NAME_BYTE = byte_class(core._name_bytes())
M.NAME_BYTE = NAME_BYTE
M.NAME_PATTERN = "^" .. NAME_BYTE .. "+$"

--- Every @name in prompt: { name =, after = the byte that follows (or "") }.
function M.prompt_names(prompt)
  local found, i = {}, 1
  while true do
    local s, e, name = prompt:find("@(" .. NAME_BYTE .. "+)", i)
    if not s then break end
    local before = s > 1 and prompt:sub(s - 1, s - 1) or ""
    if before == "" or not before:find(NAME_BYTE) then
      found[#found + 1] = { name = name, after = prompt:sub(e + 1, e + 1) }
    end
    i = e + 1
  end
  return found
end

local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

local function quote(v)
  if type(v) == "string" then return ("%q"):format(v) end
  return tostring(v)
end

local function list_text(list)
  return table.concat(list, ", ")
end

local is_url = guard.is_url

-- A local image: an image by its name and, when the file itself is looked at here, a regular
-- file (never a FIFO, a device or a directory, which would block or read without end) that can
-- be read and is not too large (opened without blocking: csrc/engine/hash.c, pf_open_regular).
-- on_disk: look at the file now. A file the gateway uploads is not: a look can wait on the disk
-- (a cold inode, a network file system), so the engine's worker checks it, with these same
-- words, before anything is sent (csrc/engine/jobs.c, run_hash). A file the client's uploader
-- takes is, since the uploader (the user's code) reads it right away on this thread anyway.
-- Returns nil when fine, else the problem's text.
local function local_image_problem(path, on_disk)
  local ext = path:match("%.([%w]+)$")
  if not ext or not IMAGE_EXT[ext:lower()] then
    return "is not a PNG, JPEG, WebP or GIF file (by its name)"
  end
  if not on_disk then return nil end
  local size, err, code = fs.open_check(path)
  if not size then
    if code == "not_a_file" then
      local _, _, what = fs.stat(path)
      return ("is %s, not a regular file: give an image file"):format(what or "not a regular file")
    end
    return ("cannot be read (%s)"):format((err:gsub("^cannot read ", "")))
  end
  if size == 0 then return "is empty" end
  if size > M.MAX_IMAGE_BYTES then
    return ("is %d bytes; gateways take images up to %d MB"):format(size, M.MAX_IMAGE_BYTES // 1048576)
  end
  return nil
end

-- "whole" is an integer, or a float with an integral value (JSON decoders give 5.0)
local function normalise_types(spec)
  local out = {}
  for k, v in pairs(spec) do
    if v == "whole" then out[k] = "number" else out[k] = v end
  end
  return out
end
local REQUEST_TYPES = normalise_types(REQUEST)

local function check_types(fname, req, level)
  options.check(fname, 1, req, REQUEST_TYPES, level + 1)
  for k, want in pairs(REQUEST) do
    local v = req[k]
    if want == "whole" and v ~= nil and not math.tointeger(v) then
      options.fail(fname, 1, level + 1, "field '%s' must be a whole number, got %s", k, tostring(v))
    end
  end
  if req.references ~= nil then
    local refs = req.references
    local n = #refs
    for k in pairs(refs) do
      if math.type(k) ~= "integer" or k < 1 or k > n then
        options.fail(fname, 1, level + 1, "field 'references' must be a list, found key %s", quote(k))
      end
    end
    for i = 1, n do
      local prefix = ("references[%d]."):format(i)
      options.check(fname, 1, refs[i], REFERENCE, level + 1, prefix)
      local imgs = refs[i].images
      if imgs ~= nil then
        for k, v in pairs(imgs) do
          if math.type(k) ~= "integer" or type(v) ~= "string" then
            options.fail(fname, 1, level + 1, "field '%simages' must be a list of strings", prefix)
          end
        end
      end
    end
  end
end

-- Which mode the request's fields select, and any conflict between them.
local function infer_mode(req)
  local chosen = {}
  if req.references and #req.references > 0 then chosen[#chosen + 1] = { "fusion", "references" } end
  if req.image then chosen[#chosen + 1] = { "image", "image" } end
  if req.first_frame or req.last_frame then
    chosen[#chosen + 1] = { "transition", req.first_frame and "first_frame" or "last_frame" }
  end
  if req.extend_from then chosen[#chosen + 1] = { "extend", "extend_from" } end
  return chosen
end

--- Check req for provider's model; returns the normalised request for the C core, or nil and an
-- "invalid" error naming every problem. caps_for(model) gives a model's capabilities.
-- level is the stack level of the user's call (for misuse errors).
function M.request(fname, req, provider, caps_for, default_model, level, opts)
  level = (level or 2) + 1
  opts = opts or {}
  check_types(fname, req, level)
  local problems = {}
  local function problem(field, value, allowed, fmt, ...)
    problems[#problems + 1] = { field = field, value = value, allowed = allowed,
                                message = field .. ": " .. fmt:format(...) }
  end

  local model = req.model or default_model
  local caps = caps_for(model)
  if not caps then
    local known = require("pixflow.capabilities").models(provider)
    problem("model", req.model, known, "%s is not served by %s (allowed: %s)", quote(req.model),
            provider, list_text(known))
    return nil, M.error(provider, model, problems)
  end
  local where = provider .. " " .. model

  -- mode
  local chosen = infer_mode(req)
  local mode = req.mode
  if mode ~= nil and not contains(MODES, mode) then
    problem("mode", mode, MODES, "%s is not a mode (allowed: %s)", quote(mode), list_text(MODES))
    mode = nil
  end
  if #chosen > 1 then
    local names, fields = {}, {}
    for _, c in ipairs(chosen) do names[#names + 1] = c[1]; fields[#fields + 1] = c[2] end
    problem("mode", nil, nil, "%s select different modes (%s); give the fields of one mode only",
            list_text(fields), list_text(names))
  end
  local inferred = chosen[1] and chosen[1][1] or "text"
  if mode == nil then
    mode = req.mode == nil and inferred or nil
  elseif #chosen == 1 and mode ~= inferred then
    problem("mode", mode, nil, "%s does not match the fields given (%s selects %s)", quote(mode),
            chosen[1][2], inferred)
  end
  if mode and not contains(caps.modes, mode) then
    problem("mode", mode, caps.modes, "%s is not supported by %s (allowed: %s)", quote(mode), where,
            list_text(caps.modes))
  end

  -- what each mode needs
  if mode == "fusion" and not (req.references and #req.references > 0) then
    problem("references", nil, nil, "fusion needs at least one reference")
  elseif mode == "image" and not req.image then
    problem("image", nil, nil, "image mode needs image")
  elseif mode == "transition" and not (req.first_frame and req.last_frame) then
    problem(req.first_frame and "last_frame" or "first_frame", nil, nil,
            "transition needs both first_frame and last_frame")
  elseif mode == "extend" and not req.extend_from then
    problem("extend_from", nil, nil, "extend needs extend_from (a task or a task id)")
  end

  -- a NUL byte: the C core and the gateways see C strings, so the text would be cut there
  -- (the gateway never seeing the rest) while the journal kept the whole
  local function nul_problem(field, v)
    local at = v:find("\0", 1, true)
    problem(field, at - 1, nil, "holds a NUL byte at byte offset %d (counting from 0, of %d bytes), which cannot "
            .. "be sent: the text would be cut there; remove it", at - 1, #v)
  end

  -- prompt
  local prompt = req.prompt
  if prompt == nil or prompt == "" then
    problem("prompt", prompt, nil, "a prompt is required")
  elseif prompt:find("\0", 1, true) then
    nul_problem("prompt", prompt)
  elseif not utf8.len(prompt) then
    problem("prompt", nil, nil, "is not valid UTF-8")
  elseif caps.prompt_max and utf8.len(prompt) > caps.prompt_max then
    problem("prompt", utf8.len(prompt), caps.prompt_max, "%d characters is too long (%s allows %d)",
            utf8.len(prompt), where, caps.prompt_max)
  end
  local np = req.negative_prompt
  if np ~= nil then
    if np:find("\0", 1, true) then
      nul_problem("negative_prompt", np)
    elseif not caps.negative_prompt_max then
      problem("negative_prompt", np, nil, "%s has no negative prompt", where)
    elseif caps.negative_prompt_modes and mode and not contains(caps.negative_prompt_modes, mode) then
      problem("negative_prompt", np, caps.negative_prompt_modes, "%s takes a negative prompt only in "
              .. "%s modes", where, list_text(caps.negative_prompt_modes))
    elseif not utf8.len(np) or utf8.len(np) > caps.negative_prompt_max then
      problem("negative_prompt", np, caps.negative_prompt_max,
              "must be valid UTF-8 of at most %d characters", caps.negative_prompt_max)
    end
  end

  -- an image field: a public URL, or a local file the gateway can upload (or the client's
  -- uploader can turn into a URL); data URIs and base64 are taken by none of them
  local function check_image(field, v)
    if v:find("\0", 1, true) then return nul_problem(field, v) end
    if is_url(v) then return end
    if v:find("^data:") then
      problem(field, v:sub(1, 30), "http(s) URL or a local file",
              "data URIs are not accepted: give a public http(s) URL or a local file")
    elseif not (caps.uploads or opts.uploader) then
      problem(field, v, "http(s) URL",
              "%s is not a public http(s) URL, and %s has no upload call for local files "
              .. "(give a URL, or set the client's uploader)", quote(v), provider)
    else
      local why = local_image_problem(v, not caps.uploads)
      if why then problem(field, v, nil, "%s %s", quote(v), why) end
    end
  end

  -- references
  local refs, names = {}, {}
  if req.references then
    local rc = caps.references
    local n = #req.references
    if not rc then
      problem("references", n, nil, "%s takes no reference images", where)
    elseif n > rc.max or n < rc.min then
      problem("references", n, { rc.min, rc.max }, "%d references is not allowed (%s takes %d to %d)",
              n, where, rc.min, rc.max)
    end
    for i, r in ipairs(req.references) do
      local f = ("references[%d]"):format(i)
      if r.name == nil or not r.name:find(M.NAME_PATTERN) then
        problem(f .. ".name", r.name, nil,
                "%s is not a usable name (letters, digits, '_' and '-', as written after @)",
                quote(r.name))
      elseif caps.reference_name and (#r.name > caps.reference_name.max
                                      or not r.name:find("^[" .. caps.reference_name.chars .. "]+$")) then
        -- the gateway's own rule for a name (pixflow.capabilities: reference_name)
        local rule = caps.reference_name
        local bad = r.name:match("[^" .. rule.chars .. "][\128-\191]*")
        problem(f .. ".name", r.name, rule.text, "%s is not a name %s takes: %s (allowed: %s)", quote(r.name),
                where, bad and ("%q is not allowed"):format(bad) or ("%d characters is too long"):format(#r.name),
                rule.text)
        names[r.name] = names[r.name] or i   -- the prompt's @name still refers to it
      elseif names[r.name] then
        problem(f .. ".name", r.name, nil, "%s is used by two references", quote(r.name))
      else
        names[r.name] = i
      end
      local imgs = r.images or { r.image }
      if r.image ~= nil and r.images ~= nil then
        problem(f, nil, nil, "give image or images, not both")
      elseif #imgs == 0 or imgs[1] == "" then
        problem(f .. ".image", nil, nil, "an image is required")
      else
        local per = rc and rc.images_per_reference or 1
        if #imgs > per then
          problem(f .. ".images", #imgs, per, "%d images is too many (%s takes %d per reference)",
                  #imgs, where, per)
        end
        for j, img in ipairs(imgs) do
          check_image(r.images and ("%s.images[%d]"):format(f, j) or (f .. ".image"), img)
        end
      end
      if r.type ~= nil and not contains(REF_TYPES, r.type) then
        problem(f .. ".type", r.type, REF_TYPES, "%s is not a reference type (allowed: %s)",
                quote(r.type), list_text(REF_TYPES))
      end
      local list = {}
      for j, img in ipairs(r.images or { r.image }) do list[j] = img end
      refs[i] = { name = r.name, images = list, type = r.type }
    end
  end
  if prompt and prompt ~= "" then
    for _, m in ipairs(M.prompt_names(prompt)) do
      if not names[m.name] then
        local known = {}
        for k in pairs(names) do known[#known + 1] = k end
        table.sort(known)
        problem("prompt", "@" .. m.name, known, "@%s has no matching reference (%s)", m.name,
                #known > 0 and ("references: " .. list_text(known)) or "there are no references")
      elseif m.after ~= "" and not m.after:find("^%s$") then
        problem("prompt", "@" .. m.name, nil, "@%s must be followed by a space or the end of the "
                .. "prompt (found %s)", m.name, quote(m.after))
      end
    end
  end

  -- single images
  for _, f in ipairs({ "image", "first_frame", "last_frame" }) do
    if req[f] ~= nil then check_image(f, req[f]) end
  end

  -- extend_from: a task id, or a task (which the submit then waits for, if it has not succeeded)
  local extend_from, extend_task = req.extend_from, nil
  if extend_from ~= nil and type(extend_from) ~= "string" then
    local ok, status = pcall(function() return extend_from.status end)
    if not ok or type(status) ~= "string" then
      problem("extend_from", nil, nil, "must be a task id or a pixflow task")
      extend_from = nil
    elseif status ~= "succeeded" and (extend_from.done or status == "closed") then
      problem("extend_from", status, "succeeded", "the task to extend ended %s: it cannot be extended", status)
      extend_from = nil
    else
      extend_task = extend_from
      extend_from = status == "succeeded" and extend_from.id or nil
    end
  elseif extend_from == "" then
    problem("extend_from", extend_from, nil, "the task id is empty")
  elseif type(extend_from) == "string" and extend_from:find("\0", 1, true) then
    nul_problem("extend_from", extend_from)
  end

  -- duration
  local duration = req.duration and math.tointeger(req.duration)
  if duration then
    local set = caps.duration_by_mode and mode and caps.duration_by_mode[mode]
    if set then
      if not contains(set, duration) then
        problem("duration", duration, set, "%d is not allowed (%s %s allows %s seconds)", duration,
                where, mode, list_text(set))
      end
    elseif caps.duration.set then
      if not contains(caps.duration.set, duration) then
        problem("duration", duration, caps.duration.set, "%d is not allowed (%s allows %s seconds)",
                duration, where, list_text(caps.duration.set))
      end
    elseif duration < caps.duration.min or duration > caps.duration.max then
      problem("duration", duration, { caps.duration.min, caps.duration.max },
              "%d is not allowed (%s allows %d to %d seconds)", duration, where, caps.duration.min,
              caps.duration.max)
    end
  end

  if duration and caps.duration_rules then
    local res = req.resolution or (caps.defaults and caps.defaults.resolution)
    for _, rule in ipairs(caps.duration_rules) do
      if res == rule.resolution and duration > rule.max and (not rule.modes or contains(rule.modes, mode)) then
        problem("duration", duration, rule.max, "%d is not allowed at %s (%s allows at most %d seconds there)",
                duration, res, where, rule.max)
      end
    end
  end

  if req.resolution ~= nil and not contains(caps.resolutions, req.resolution) then
    problem("resolution", req.resolution, caps.resolutions, "%s is not allowed (%s allows %s)",
            quote(req.resolution), where, list_text(caps.resolutions))
  end
  if req.aspect_ratio ~= nil and caps.aspect_ratio == false then
    problem("aspect_ratio", req.aspect_ratio, nil, "%s ignores aspect_ratio (the output follows the "
            .. "first image's); leave it out", where)
  elseif req.aspect_ratio ~= nil then
    if not contains(caps.aspect_ratios, req.aspect_ratio) then
      problem("aspect_ratio", req.aspect_ratio, caps.aspect_ratios, "%s is not allowed (%s allows %s)",
              quote(req.aspect_ratio), where, list_text(caps.aspect_ratios))
    elseif mode and caps.aspect_ratio_modes and not contains(caps.aspect_ratio_modes, mode) then
      problem("aspect_ratio", req.aspect_ratio, caps.aspect_ratio_modes,
              "%s applies aspect_ratio only in %s modes, not %s (the output follows the input image); "
              .. "leave it out", where, list_text(caps.aspect_ratio_modes), mode)
    end
  end
  local seed = req.seed and math.tointeger(req.seed)
  if seed and not caps.seed then
    problem("seed", seed, nil, "%s takes no seed", where)
  elseif seed and (seed < caps.seed.min or seed > caps.seed.max) then
    problem("seed", seed, { caps.seed.min, caps.seed.max }, "%d is outside %d to %d", seed,
            caps.seed.min, caps.seed.max)
  end
  if req.audio ~= nil and not caps.audio then
    problem("audio", req.audio, nil, "%s cannot generate audio", where)
  elseif req.audio ~= nil and caps.audio_modes and mode and not contains(caps.audio_modes, mode) then
    problem("audio", req.audio, caps.audio_modes, "%s generates audio only in %s mode", where,
            list_text(caps.audio_modes))
  end
  local count = req.count and math.tointeger(req.count)
  if count and not caps.count then
    problem("count", count, nil, "%s makes one video per task", where)
  elseif count and (count < caps.count.min or count > caps.count.max) then
    problem("count", count, { caps.count.min, caps.count.max }, "%d is outside %d to %d", count,
            caps.count.min, caps.count.max)
  end
  if req.expand_prompt ~= nil and not caps.expand_prompt then
    problem("expand_prompt", req.expand_prompt, nil, "%s has no prompt expansion", where)
  end
  if req.watermark ~= nil and not caps.watermark then
    problem("watermark", req.watermark, nil, "%s has no watermark switch", where)
  end

  if #problems > 0 then return nil, M.error(provider, model, problems) end
  -- the second result: a task to wait for before sending (extend_from a task not finished yet)
  return {
    mode = mode, model = caps.gateway_model, unified_model = model, prompt = prompt,
    negative_prompt = np, references = req.references and refs or nil,
    image = req.image, first_frame = req.first_frame, last_frame = req.last_frame,
    extend_from = extend_from, duration = duration, resolution = req.resolution,
    aspect_ratio = req.aspect_ratio, seed = seed, audio = req.audio, watermark = req.watermark,
    count = count, expand_prompt = req.expand_prompt,
  }, extend_task
end

--- One "invalid" error for all problems.
function M.error(provider, model, problems)
  local lines = {}
  for i, p in ipairs(problems) do lines[i] = "  - " .. p.message end
  local msg = ("invalid request for %s %s, nothing was sent (%d problem%s):\n%s"):format(
    provider, tostring(model), #problems, #problems == 1 and "" or "s", table.concat(lines, "\n"))
  return errors.new("invalid", msg, { provider = provider, problems = problems,
                                      hint = "fix the fields listed; nothing was sent or charged" })
end

return M
