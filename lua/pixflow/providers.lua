--- pixflow.providers: a preset per gateway: wire protocol, base URL, how the key is sent, its
-- environment variable, poll cadence, timeouts and concurrency. pixflow.new merges the user's
-- overrides over these. Sources: ../shared/providers.md (section in each comment).
local options = require "pixflow.options"

local M = {}

local TIMEOUTS = { connect = 10, request = 60, download = 3600, low_speed_bytes = 1, low_speed_time = 30 }
local function poll(initial, interval, max)
  return { initial = initial, interval = interval, max = max, backoff = 1.5, jitter = 0.2,
           max_failures = 8 }
end

local PRESETS = {
  -- the official platform (2.1): API-KEY header and a fresh Ai-trace-id per request; no progress
  -- is reported, so the cadence is TokenHub's 3-5 s advice, backing off
  pixverse = {
    adapter = "pixverse", auth = "api-key", base_url = "https://app-api.pixverse.ai",
    key_env = "PIXVERSE_API_KEY", default_model = "v5.6",
    poll = poll(5, 5, 30), timeouts = TIMEOUTS, max_per_host = 8, task_timeout = 1800,
  },
  -- a relay of the platform API (3): Bearer auth; query and upload paths inferred
  quickrouter = {
    adapter = "pixverse", auth = "bearer", base_url = "https://api.quickrouter.ai",
    key_env = "QUICKROUTER_API_KEY", default_model = "v5.6",
    poll = poll(5, 5, 30), timeouts = TIMEOUTS, max_per_host = 8, task_timeout = 1800,
  },
  -- 7: apimart recommends polling every 5 s; estimated_time pulls it in
  apimart = {
    adapter = "apimart", auth = "bearer", base_url = "https://api.apimart.ai",
    key_env = "APIMART_API_KEY", default_model = "v6",
    poll = poll(5, 5, 30), timeouts = TIMEOUTS, max_per_host = 8, task_timeout = 1800,
  },
  -- 5: 20 status queries per second per account; typical runs take 1-5 minutes. The model, the
  -- endpoint and the key must come from one region: `region` and `workspace` pick the host.
  dashscope = {
    adapter = "dashscope", auth = "bearer", base_url = "https://dashscope.aliyuncs.com",
    key_env = "DASHSCOPE_API_KEY", default_model = "c1",
    ref_names = true,   -- ref_name on media items is unverified: ref_names = false turns it off
    regions = {
      beijing = { url = "https://dashscope.aliyuncs.com",
                  workspace_url = "https://{workspace}.cn-beijing.maas.aliyuncs.com" },
      singapore = { workspace_url = "https://{workspace}.ap-southeast-1.maas.aliyuncs.com" },
    },
    poll = poll(5, 5, 30), timeouts = TIMEOUTS, max_per_host = 8, task_timeout = 1800,
  },
  -- 4: reports progress_percent and eta
  jiekou = {
    adapter = "jiekou", auth = "bearer", base_url = "https://api.jiekou.ai",
    key_env = "JIEKOU_API_KEY", default_model = "c1",
    poll = poll(5, 5, 30), timeouts = TIMEOUTS, max_per_host = 8, task_timeout = 1800,
  },
  -- 6
  baicai = {
    adapter = "baicai", auth = "bearer", base_url = "https://cloud.baicaiinfer.com",
    key_env = "BAICAI_API_KEY", default_model = "v4.5",
    poll = poll(5, 5, 30), timeouts = TIMEOUTS, max_per_host = 8, task_timeout = 1800,
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
