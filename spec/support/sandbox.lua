-- spec/support/sandbox.lua: start build/pixflow-sandbox on a free loopback port for a spec,
-- talk to its /_sandbox controls, stop it. Loopback only: nothing here reaches the internet.
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local util = require "spec.support.util"

local M = {}
M.BINARY = "./build/pixflow-sandbox"

local function request(method, url, body)
  if url:find("^https:") then
    -- LuaSocket speaks no TLS: the controls of an HTTPS sandbox go through curl(1), which is
    -- told to skip verification for these loopback control calls only
    local f = os.tmpname()
    if body then local h = io.open(f, "w"); h:write(body); h:close() end
    -- (env -u LD_PRELOAD: under make test-asan an uninstrumented curl with the ASan runtime hangs)
    local p = io.popen(("env -u LD_PRELOAD curl -sk -X %s %s -w '\n%%{http_code}' '%s'"):format(method,
      body and ("-H 'content-type: application/json' --data-binary @" .. f) or "", url))
    local out = p:read("a")
    p:close()
    os.remove(f)
    local text, code = out:match("^(.*)\n(%d+)$")
    return tonumber(code), text
  end
  local out = {}
  local _, code = http.request{
    url = url, method = method, sink = ltn12.sink.table(out),
    source = body and ltn12.source.string(body) or nil,
    headers = body and { ["content-length"] = tostring(#body), ["content-type"] = "application/json" } or nil,
  }
  return code, table.concat(out)
end
M.request = request

--- Start a sandbox. opts.task_seconds (default 0.4), opts.seed, opts.idle (run it under SCHED_IDLE,
-- chrt --idle: a benchmark's stand-in for a server elsewhere). Returns an object with
-- url, port, base(gateway), stats(), reset(), stop().
function M.start(opts)
  opts = opts or {}
  -- the server's own log (libmicrohttpd notices, e.g. a client that hung up on a huge reply)
  -- goes to a file, not into the test output
  local log = os.tmpname()
  local tls = opts.tls_cert and (" --tls-cert %s --tls-key %s"):format(opts.tls_cert, opts.tls_key) or ""
  local cmd = ("exec %s%s --port 0 --exit-with-parent --task-seconds %s%s%s 2>%s"):format(
    opts.idle and "chrt --idle 0 " or "", M.BINARY, tostring(opts.task_seconds or 0.4), opts.seed and (" --seed " .. opts.seed) or "", tls, log)
  local proc = assert(io.popen(cmd, "r"))
  local line = proc:read("l")
  local url = line and line:match("listening on (https?://127%.0%.0%.1:%d+)")
  assert(url, "the sandbox did not start: " .. tostring(line))
  local s = { url = url, port = tonumber(url:match(":(%d+)$")), proc = proc, log = log }
  function s.base(gateway) return url .. "/" .. gateway end
  function s.stats()
    local code, body = request("GET", url .. "/_sandbox/stats")
    assert(code == 200, "stats: " .. tostring(code))
    return cjson.decode(body)
  end
  function s.reset() assert(request("POST", url .. "/_sandbox/reset", "") == 200) end
  -- Replace the fault plan (docs/sandbox.md); returns the plan as the sandbox sees it.
  function s.faults(list)
    -- an empty Lua table encodes as {}, not []: no faults is a DELETE
    local code, body
    if next(list) == nil then code, body = request("DELETE", url .. "/_sandbox/faults")
    else code, body = request("POST", url .. "/_sandbox/faults", cjson.encode({ faults = list })) end
    assert(code == 200, "faults: " .. tostring(code) .. " " .. tostring(body))
    return cjson.decode(body).faults
  end
  function s.stop()
    if s.proc then
      request("POST", url .. "/_sandbox/shutdown", "")
      s.proc:close()
      s.proc = nil
      os.remove(s.log)
    end
  end
  return s
end

--- Inside a describe: start a sandbox and a temporary directory before its specs, stop and
-- remove them after, and hand both to the spec's locals through bind(sbx, dir).
-- opts: the sandbox's (task_seconds, seed), reset = true to zero it before each spec, remove =
-- further paths to delete at the end.
function M.around(opts, bind)
  local busted = require "busted"
  local s, d
  busted.setup(function()
    s = M.start(opts)
    d = util.tmpdir()
    bind(s, d)
  end)
  busted.teardown(function()
    s.stop()
    os.execute("rm -rf " .. d .. " " .. table.concat(opts.remove or {}, " "))
  end)
  if opts.reset then busted.before_each(function() s.reset() end) end
end

return M
