--- pixflow.guard: refusals before anything is spent, and text that is safe to show.
--   output_path(path)   an output path the worker can check, or an "invalid" error naming it
--   absolute(path)      the absolute, normalised form of a path (symbolic links of directories resolved)
--   check_key(key, ...) an API key an HTTP header can carry, or an "auth" error that never shows it
--   text(s)             gateway text with its control characters escaped, for a terminal
--   json(v)             one JSON line that never raises (non-finite numbers become null)
--   is_url(s)           is s an http(s) URL (the one URL test: requests, base URLs, uploaders,
--                       manifests, the command's options)
local core = require "pixflow.core"
local errors = require "pixflow.errors"

local fs = core._fs
local M = {}

--- The longest API key pixflow sends. The header is built in a 1024-byte line
-- (csrc/adapters/common.c, "Authorization: Bearer " + key); gateway keys are well under 100 bytes.
M.MAX_KEY_BYTES = 1000

--- Is s an http:// or https:// URL (a scheme, then no white space)? Anything else given where an
-- image goes is a local file; a base URL, an uploader's answer or a --base-url must be one.
function M.is_url(s)
  return type(s) == "string" and s:find("^https?://[^%s]+$") ~= nil
end

-- ------------------------------------------------------------------ text for a terminal

-- One UTF-8 character at i: its code point and length, or nil when the bytes are not UTF-8.
local function decode(s, i)
  local b = s:byte(i)
  if b < 0x80 then return b, 1 end
  local n, cp, min
  if b >= 0xC2 and b <= 0xDF then n, cp, min = 2, b & 0x1F, 0x80
  elseif b >= 0xE0 and b <= 0xEF then n, cp, min = 3, b & 0x0F, 0x800
  elseif b >= 0xF0 and b <= 0xF4 then n, cp, min = 4, b & 0x07, 0x10000
  else return nil end
  for k = 1, n - 1 do
    local c = s:byte(i + k)
    if not c or c & 0xC0 ~= 0x80 then return nil end
    cp = (cp << 6) | (c & 0x3F)
  end
  if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return nil end
  return cp, n
end

-- Characters a terminal acts on or that reorder what is shown: C1 controls (U+0080-U+009F, CSI
-- among them) and the bidirectional embeddings, overrides and isolates.
local function invisible(cp)
  return (cp >= 0x80 and cp <= 0x9F) or (cp >= 0x202A and cp <= 0x202E) or (cp >= 0x2066 and cp <= 0x2069)
end

local NAMED = { [9] = "\\t", [10] = "\\n", [13] = "\\r" }

--- s (any value, through tostring) with every control character escaped: C0 controls (ESC,
-- BEL, CR, ... as \xNN, \r, \n, \t), DEL, C1 controls and bidirectional controls (as \uNNNN),
-- and bytes that are not UTF-8 (as \xNN). With keep_newlines, "\n" stays a line break (for
-- pixflow's own multi-line messages); everything else is escaped the same.
function M.text(s, keep_newlines)
  if s == nil then return "" end
  s = tostring(s)
  if not s:find("[\0-\31\127-\255]") then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local cp, len = decode(s, i)
    if not cp then
      out[#out + 1] = ("\\x%02X"):format(s:byte(i))
      len = 1
    elseif cp == 10 and keep_newlines then
      out[#out + 1] = "\n"
    elseif cp < 0x20 or cp == 0x7F then
      out[#out + 1] = NAMED[cp] or ("\\x%02X"):format(cp)
    elseif invisible(cp) then
      out[#out + 1] = ("\\u%04X"):format(cp)
    else
      out[#out + 1] = s:sub(i, i + len - 1)
    end
    i = i + len
  end
  return table.concat(out)
end

-- A value for a message: escaped, quoted, and cut in the middle when it is long.
local function shown(s)
  local t = M.text(s)
  local chars = utf8.len(t)
  if chars and chars > 72 then
    t = t:sub(1, utf8.offset(t, 41) - 1) .. "..." .. t:sub(utf8.offset(t, chars - 19))
  end
  return '"' .. t .. '"'
end
M.shown = shown

-- ------------------------------------------------------------------ JSON that never raises

local cjson = require "cjson"
local encoder = cjson.new()            -- a private instance: the caller's cjson settings stay theirs
local NULL = cjson.null

-- valid UTF-8, each invalid byte replaced by U+FFFD
local function utf8_clean(s)
  if utf8.len(s) then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local cp, len = decode(s, i)
    if cp then out[#out + 1] = s:sub(i, i + len - 1) else out[#out + 1] = "\239\191\189"; len = 1 end
    i = i + len
  end
  return table.concat(out)
end

local function clean(v, seen, depth)
  local t = type(v)
  if t == "string" then return utf8_clean(v) end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return NULL end
    return v
  end
  if t == "boolean" or v == NULL then return v end
  if v == nil then return NULL end
  if t ~= "table" then
    local ok, s = pcall(tostring, v)
    return utf8_clean(ok and type(s) == "string" and s or t)
  end
  if seen[v] then return "(a cycle)" end
  if depth > 32 then return "(nested too deep)" end
  seen[v] = true
  local count, max, array = 0, 0, true
  for k in next, v do
    count = count + 1
    if math.type(k) == "integer" and k >= 1 then
      if k > max then max = k end
    else
      array = false
    end
  end
  local out = {}
  if array and max == count and count > 0 then
    for i = 1, max do out[i] = clean(v[i], seen, depth + 1) end
  else
    for k, x in next, v do
      local key = type(k) == "string" and utf8_clean(k) or tostring(k)
      out[key] = clean(x, seen, depth + 1)
    end
  end
  seen[v] = nil
  return out
end

-- C1 and bidirectional controls in UTF-8 are legal JSON; a terminal that shows the line may act
-- on them, so they go out as \u escapes (they occur only inside strings in the encoded text).
local function escape_invisible(s)
  s = s:gsub("\194([\128-\159])", function(c) return ("\\u%04X"):format(c:byte()) end)
  s = s:gsub("\226\128([\170-\174])", function(c) return ("\\u%04X"):format(0x2000 + c:byte() - 0x80) end)
  s = s:gsub("\226\129([\166-\169])", function(c) return ("\\u%04X"):format(0x2040 + c:byte() - 0x80) end)
  return s
end

--- v as one line of JSON. Never raises: NaN and infinities become null, invalid UTF-8 becomes
-- U+FFFD, functions and userdata their tostring, cycles a note; if encoding still fails, an
-- "error" event that says so.
function M.json(v)
  local ok, s = pcall(function() return encoder.encode(clean(v, {}, 0)) end)
  if ok and type(s) == "string" then return escape_invisible(s) end
  local event = type(v) == "table" and type(rawget(v, "event")) == "string" and utf8_clean(rawget(v, "event")) or nil
  local fok, fs_ = pcall(encoder.encode, { event = "error", kind = "other",
    message = "pixflow could not encode the " .. (event and ("'" .. event .. "' ") or "") .. "event: "
      .. utf8_clean(tostring(s)) })
  return fok and escape_invisible(fs_) or '{"event":"error","kind":"other","message":"pixflow could not encode an event"}'
end

-- ------------------------------------------------------------------ API keys

local CONTROL_NAMES = { [0] = "a NUL byte", [9] = "a tab", [10] = "a line feed (LF)", [13] = "a carriage return (CR)" }

--- nil when key can be sent in an HTTP header as it is; else an "auth" error naming where the
-- key came from (source: "api_key" or the environment variable) and what is wrong with it,
-- never the key. provider names the gateway in the error.
function M.check_key(key, source, provider)
  local where = source == "api_key" and "field 'api_key'" or source
  local function bad(code, what, fix)
    return errors.new("auth", ("the API key in %s %s; nothing was sent (the key is not shown)"):format(where, what),
                      { provider = provider, code = code, field = source, hint = fix })
  end
  if #key > M.MAX_KEY_BYTES then
    return bad("key_too_long", ("is %d bytes; pixflow sends keys of at most %d bytes"):format(#key, M.MAX_KEY_BYTES),
               ("gateway keys are far shorter: check that %s holds the key itself (not a file or several keys)"):format(where))
  end
  local at = key:find("[\0-\31\127]")
  if at then
    local b = key:byte(at)
    return bad("key_control", ("holds %s at byte %d of %d, which an HTTP header cannot carry"):format(
                 CONTROL_NAMES[b] or ("a control character (0x%02X)"):format(b), at, #key),
               ("set %s to the key alone: a line break copied from a file or a terminal is the usual cause"):format(where))
  end
  if key:find("^ ") or key:find(" $") then
    return bad("key_space", ("%s with a space, which an HTTP header drops"):format(key:find("^ ") and "starts" or "ends"),
               ("set %s to the key alone, without spaces around it"):format(where))
  end
  return nil
end

-- ------------------------------------------------------------------ paths

local function parent(p)
  local d = p:match("^(.*)/[^/]*$")
  if d == nil or d == "" then return "/" end
  return d
end

local function join(dir, name)
  return (dir == "/" and "" or dir) .. "/" .. name
end

--- The absolute, normalised form of path: relative to the working directory, "." and ".."
-- applied and symbolic links of its existing directories resolved, as the kernel would (the
-- last component is kept as written: a rename replaces a link there, it does not follow it).
-- Returns the path, or nil and an error (a NUL byte, an unknown working directory).
function M.absolute(path)
  if type(path) ~= "string" or path == "" then
    return nil, errors.new("invalid", "a path must be a non-empty string", { code = "bad_path" })
  end
  if path:find("\0", 1, true) then
    return nil, errors.new("invalid", ("the path %s holds a NUL byte, which a file name cannot"):format(shown(path)),
                           { code = "bad_path" })
  end
  -- one rule for every absolute path pixflow keeps (csrc/journal.c, pf_abspath): the journal's
  -- claims and this check must name a file the same way
  local abs, err = core.abspath(path)
  if not abs then
    return nil, errors.new("io", ("cannot resolve %s: %s"):format(shown(path), err.message), { code = "cwd" })
  end
  return abs
end

--- Check, before a submit or a download, what can be told of an output path without asking a
-- disk: a string, no NUL byte, a file name (not "dir/", "." or ".."). The rest (the file
-- system's limits, a directory or a device at path, its directory made, a file created there)
-- is checked on the engine's worker (csrc/engine/outpath.c): a path that fails there fails the
-- task before anything is sent (or the download, and the video stays to be fetched again).
-- Returns the path to hand to the core (a relative one joined to the working directory now, so
-- that a later chdir does not move it), or nil and an "invalid" error naming the field
-- (output), the value and what is allowed.
-- before_submit: the error says that nothing was sent.
function M.output_path(path, before_submit)
  local function refuse(allowed, fmt, ...)
    local msg = ("output: %s %s"):format(shown(path), fmt:format(...))
    return nil, errors.new("invalid",
      (before_submit and "the output path cannot be written, nothing was sent: " or "cannot save the video: ") .. msg,
      { code = "bad_output", field = "output", value = path, allowed = allowed,
        problems = { { field = "output", value = path, allowed = allowed, message = msg } },
        hint = before_submit and "give a file path in a directory that can be written; nothing was sent or charged"
          or "the video is not lost: download it again to a path that can be written "
          .. "(pixflow download ID -o PATH, or task:download(path))" })
  end
  if type(path) ~= "string" or path == "" then return refuse("a file path", "is empty: give a file path such as out.mp4") end
  local nul = path:find("\0", 1, true)
  if nul then return refuse("a file path without NUL bytes", "holds a NUL byte at byte %d, which a file name cannot", nul) end
  local last = path:match("([^/]*)$")
  if last == "" or last == "." or last == ".." then
    return refuse("a file path", "names a directory: give a file path such as %s", shown(join(path:gsub("/+$", ""), "out.mp4")))
  end
  if path:sub(1, 1) == "/" then return path end
  -- getcwd(3) reads the kernel's own record of the directory: it does not wait on a disk
  local cwd, cerr = fs.cwd()
  if not cwd then
    return nil, errors.new("io", ("cannot resolve %s: the working directory is unknown (%s)"):format(shown(path), cerr),
                           { code = "cwd" })
  end
  return join(cwd, path)
end

return M
