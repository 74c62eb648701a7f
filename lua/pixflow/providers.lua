--- pixflow.providers: a preset per gateway: wire protocol, base URL, key variable, poll cadence,
-- timeouts and concurrency. pixflow.new merges the user's overrides over these.
local options = require "pixflow.options"

local M = {}

local PRESETS = {
  apimart = {
    adapter = "apimart",
    base_url = "https://api.apimart.ai",                -- providers.md 7.1
    key_env = "APIMART_API_KEY",
    default_model = "v6",
    -- apimart recommends polling every 5 s (providers.md 7.2); estimated_time pulls it in
    poll = { initial = 5, interval = 5, max = 30, backoff = 1.5, jitter = 0.2, max_failures = 8 },
    timeouts = { connect = 10, request = 60, download = 3600, low_speed_bytes = 1,
                 low_speed_time = 30 },
    max_per_host = 8,
    task_timeout = 1800,                                -- 30 minutes per task by default
  },
}

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = type(v) == "table" and copy(v) or v end
  return out
end

--- A copy of the named preset, or nil.
function M.preset(name)
  local p = PRESETS[name]
  return p and copy(p)
end

--- The preset names, sorted.
function M.names()
  return options.sorted_keys(PRESETS)
end

return M
