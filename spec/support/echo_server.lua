-- spec/support/echo_server.lua: a hostile gateway for the secrets specs: it speaks apimart's
-- wire protocol on 127.0.0.1 and puts the request's Authorization header, the API key, into
-- every error message it sends. One connection at a time, each closed after its reply; it stops
-- on GET /_stop, or after a minute without requests (so it never outlives a spec).
--   lua5.4 spec/support/echo_server.lua CLIP.mp4   -> prints "listening on http://127.0.0.1:PORT"
-- Prompt words: #auth (the submit gets a 401 that echoes the key), #long (the same, cut by the
-- key's end: only its start is left), #tail (only the key's end), #submit500 (a 500 that echoes
-- it: unconfirmed), #fail (the task fails with a message that echoes it). Every task's first
-- status poll gets a 503 that echoes it (retried: task.last_retry).
local socket = require "socket"

local clip do
  local f = assert(io.open(assert(arg[1], "usage: echo_server.lua CLIP.mp4"), "rb"))
  clip = f:read("a")
  f:close()
end

local srv = assert(socket.bind("127.0.0.1", 0))
local _, port = srv:getsockname()
local base = ("http://127.0.0.1:%d"):format(port)
io.stdout:write("listening on ", base, "\n")
io.stdout:flush()

local tasks, n = {}, 0

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(ch) return ("\\u%04x"):format(ch:byte()) end) .. '"'
end

local function reply(conn, status, body, ctype)
  conn:send(("HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n")
    :format(status, ctype or "application/json", #body) .. body)
end

local function echo_error(conn, status, etype, text)
  reply(conn, status, ('{"error":{"message":%s,"type":"%s","code":%s}}'):format(json_string(text), etype,
        json_string(text:sub(1, 40))))
end

local function handle(conn)
  conn:settimeout(5)
  local line = conn:receive("*l")
  if not line then return end
  local method, path = line:match("^(%u+) (%S+)")
  local headers = {}
  while true do
    local h = conn:receive("*l")
    if not h or h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.*)$")
    if k then headers[k:lower()] = v end
  end
  if headers.expect and headers.expect:lower():find("100%-continue") then
    conn:send("HTTP/1.1 100 Continue\r\n\r\n")
  end
  local body = ""
  local len = tonumber(headers["content-length"] or "")
  if len and len > 0 then body = conn:receive(len) or "" end
  local auth = headers.authorization or headers["api-key"] or "(none)"
  if path == "/_stop" then
    reply(conn, 200, "{}")
    return "stop"
  end
  if method == "POST" and path:find("/v1/videos/generations$") then
    if body:find("#auth", 1, true) then
      echo_error(conn, 401, "authentication_error", "Incorrect API key provided: " .. auth)
    elseif body:find("#long", 1, true) then
      -- the message is longer than pixflow keeps: it is cut inside the key
      local pad = ("x"):rep(500 - #"Incorrect API key provided: " - #"Bearer " - 10)
      echo_error(conn, 401, "authentication_error", "Incorrect API key provided: " .. pad .. auth)
    elseif body:find("#tail", 1, true) then
      -- only the key's end, as a message cut at its start would show it
      echo_error(conn, 401, "authentication_error", "the key ending " .. auth:sub(-14) .. " is not valid")
    elseif body:find("#submit500", 1, true) then
      echo_error(conn, 500, "server_error", "upstream failed for key " .. auth)
    else
      n = n + 1
      local id = ("task_echo%04d"):format(n)
      tasks[id] = { polls = 0, fail = body:find("#fail", 1, true) ~= nil }
      reply(conn, 200, ('{"code":200,"data":[{"status":"submitted","task_id":"%s"}]}'):format(id))
    end
  elseif method == "GET" and path:find("/v1/tasks/") then
    local id = path:match("/v1/tasks/([%w_]+)")
    local t = tasks[id]
    if not t then
      echo_error(conn, 404, "invalid_request_error", "no task " .. tostring(id) .. " for " .. auth)
      return
    end
    t.polls = t.polls + 1
    if t.polls == 1 then
      echo_error(conn, 503, "server_error", "busy; retry later, " .. auth)
    elseif t.fail then
      reply(conn, 200, ('{"code":200,"data":{"id":"%s","status":"failed","error":{"code":"bad_key",'
        .. '"message":%s}}}'):format(id, json_string("generation refused for " .. auth)))
    else
      reply(conn, 200, ('{"code":200,"data":{"id":"%s","status":"completed","progress":100,'
        .. '"result":{"videos":[{"url":["%s/apimart/files/%s.mp4"]}]}}}'):format(id, base, id))
    end
  elseif method == "GET" and path:find("/files/") then
    reply(conn, 200, clip, "video/mp4")
  else
    echo_error(conn, 404, "invalid_request_error", "no route " .. path .. " for " .. auth)
  end
end

srv:settimeout(60)
while true do
  local conn = srv:accept()
  if not conn then break end                -- a minute without a request
  local ok, what = pcall(handle, conn)
  conn:close()
  if ok and what == "stop" then break end
end
srv:close()
