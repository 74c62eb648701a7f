-- bench/util.lua: what the Lua benchmark programs share: clocks, peak RSS, a JSON line.
local socket = require "socket"

local M = {}

function M.wall() return socket.gettime() end

-- Peak resident set (VmHWM) and current resident set (VmRSS) of this process, in KiB.
local function status_kb(field)
  local f = io.open("/proc/self/status")
  if not f then return -1 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)")) or -1
end
function M.peak_rss_kb() return status_kb("VmHWM") end
function M.rss_kb() return status_kb("VmRSS") end

-- One flat object as a JSON line (numbers and strings only).
function M.json(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    out[#out + 1] = ("%q:%s"):format(k, type(v) == "number" and ("%.9g"):format(v) or ("%q"):format(tostring(v)))
  end
  return "{" .. table.concat(out, ",") .. "}"
end

return M
