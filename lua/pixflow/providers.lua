--- pixflow.providers: a preset per gateway: wire protocol, base URL, how the key is sent, its
-- environment variable, and what differs per gateway (poll cadence, a status rate limit).
-- pixflow.new resolves every option from the user's table, else the preset, else
-- lua/pixflow/defaults.lua (the one place defaults and ranges live). Sources:
-- ../shared/providers.md (section in each comment).
local options = require "pixflow.options"

local M = {}

-- A gateway's own poll cadence; rate: status requests per second for one client (one key),
-- where the gateway sets a limit. Everything else comes from pixflow.defaults.
local function poll(initial, interval, max, rate)
  return { initial = initial, interval = interval, max = max, rate = rate }
end

local PRESETS = {
  -- the official platform (2.1): API-KEY header and a fresh Ai-trace-id per request; no progress
  -- is reported, so the cadence is TokenHub's 3-5 s advice, backing off
  pixverse = {
    adapter = "pixverse", auth = "api-key", base_url = "https://app-api.pixverse.ai",
    key_env = "PIXVERSE_API_KEY", default_model = "v5.6",
    poll = poll(5, 5, 30),
  },
  -- a relay of the platform API (3): Bearer auth; query and upload paths inferred
  quickrouter = {
    adapter = "pixverse", auth = "bearer", base_url = "https://api.quickrouter.ai",
    key_env = "QUICKROUTER_API_KEY", default_model = "v5.6",
    poll = poll(5, 5, 30),
  },
  -- 7: apimart recommends polling every 5 s; estimated_time pulls it in
  apimart = {
    adapter = "apimart", auth = "bearer", base_url = "https://api.apimart.ai",
    key_env = "APIMART_API_KEY", default_model = "v6",
    poll = poll(5, 5, 30),
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
    poll = poll(5, 5, 30, 20),
  },
  -- 4: reports progress_percent and eta
  jiekou = {
    adapter = "jiekou", auth = "bearer", base_url = "https://api.jiekou.ai",
    key_env = "JIEKOU_API_KEY", default_model = "c1",
    poll = poll(5, 5, 30),
  },
  -- 6
  baicai = {
    adapter = "baicai", auth = "bearer", base_url = "https://cloud.baicaiinfer.com",
    key_env = "BAICAI_API_KEY", default_model = "v4.5",
    poll = poll(5, 5, 30),
  },
}

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = type(v) == "table" and copy(v) or v end
  return out
end

local PRESET_KEYS = {
  based_on = "string", adapter = "string", auth = "string", base_url = "string", key_env = "string",
  default_model = "string", models = "table", poll = "table", timeouts = "table",
  max_per_host = "number", task_timeout = "number", ref_names = "boolean", regions = "table",
}
-- The wire protocols: the core's adapter registry (csrc/adapters/registry.c), read from the
-- core when a preset is defined (so that `pixflow help` needs no built core).
local function adapters() return require("pixflow.core")._adapters end

--- Define (or redefine) a preset: another relay of a wire protocol pixflow speaks. based_on copies
-- an existing preset and its capabilities; models renames gateway models ({ ["v5.6"] = "name" }).
-- Misuse (unknown keys, unknown adapter) raises at level.
function M.define(name, spec, level)
  level = (level or 2) + 1
  if type(name) ~= "string" or not name:find("^[%w_-]+$") then
    options.fail("define_provider", 1, level, "a provider name of letters, digits, '_' or '-' expected, got %s", tostring(name))
  end
  options.check("define_provider", 2, spec, PRESET_KEYS, level)
  local caps = require "pixflow.capabilities"
  local base
  if spec.based_on then
    base = PRESETS[spec.based_on]
    if not base then
      local hint = options.suggest(spec.based_on, M.names())
      options.fail("define_provider", 2, level, "based_on: no preset '%s'%s", spec.based_on,
                   hint and ("; did you mean '" .. hint .. "'?") or "")
    end
  elseif not spec.adapter then
    options.fail("define_provider", 2, level, "give based_on (an existing preset) or adapter")
  end
  local p = copy(base or {})
  for k, v in pairs(spec) do
    if k ~= "based_on" and k ~= "models" then p[k] = type(v) == "table" and copy(v) or v end
  end
  if type(p.adapter) ~= "string" or not adapters()[p.adapter] then
    options.fail("define_provider", 2, level, "adapter: no wire protocol '%s' (known: %s)", tostring(p.adapter),
                 table.concat(options.sorted_keys(adapters()), ", "))
  end
  for _, k in ipairs({ "base_url", "key_env" }) do
    if type(p[k]) ~= "string" then options.fail("define_provider", 2, level, "%s is required", k) end
  end
  p.auth = p.auth or "bearer"
  -- capabilities: the based_on preset's, or those of the first preset on the same adapter
  local from = spec.based_on
  if not from then
    for _, n in ipairs(M.names()) do
      if PRESETS[n].adapter == p.adapter then from = n break end
    end
  end
  local models = copy(caps.data[from] or {})
  for unified, gateway_name in pairs(spec.models or {}) do
    if not models[unified] then
      options.fail("define_provider", 2, level, "models: %s has no model '%s' to rename", from, tostring(unified))
    end
    models[unified].gateway_model = gateway_name
  end
  p.default_model = p.default_model or (base and base.default_model) or next(models)
  PRESETS[name] = p
  caps.data[name] = models
  return M
end

--- Load the user's configuration file, once: PIXFLOW_CONFIG, else
-- $XDG_CONFIG_HOME/pixflow/config.lua (~/.config/pixflow/config.lua). It is a Lua file that
-- returns { providers = { name = { based_on =, base_url =, ... } }, defaults = { ... } }, run
-- with no access to globals. A missing file is fine; a broken one raises, naming the file.
local loaded_config
function M.config()
  if loaded_config then return loaded_config end
  loaded_config = { defaults = {} }
  local path = os.getenv("PIXFLOW_CONFIG")
  if not path or path == "" then
    local base = os.getenv("XDG_CONFIG_HOME")
    if not base or base == "" then base = (os.getenv("HOME") or ".") .. "/.config" end
    path = base .. "/pixflow/config.lua"
  end
  local f = io.open(path, "r")
  if not f then return loaded_config end
  local src = f:read("a")
  f:close()
  local chunk, err = load(src, "@" .. path, "t", {})
  if not chunk then error(("pixflow: cannot load %s: %s"):format(path, err), 0) end
  local ok, cfg = pcall(chunk)
  if not ok then error(("pixflow: %s failed: %s"):format(path, tostring(cfg)), 0) end
  if type(cfg) ~= "table" then error(("pixflow: %s must return a table, got %s"):format(path, type(cfg)), 0) end
  for k in pairs(cfg) do
    if k ~= "providers" and k ~= "defaults" then
      local hint = options.suggest(tostring(k), { "providers", "defaults" })
      error(("pixflow: %s: unknown key '%s'%s"):format(path, tostring(k), hint and ("; did you mean '" .. hint .. "'?") or
        " (known: providers, defaults)"), 0)
    end
  end
  for name, spec in pairs(cfg.providers or {}) do
    local ok2, derr = pcall(M.define, name, spec, 1)
    if not ok2 then error(("pixflow: %s: providers.%s: %s"):format(path, tostring(name), tostring(derr)), 0) end
  end
  loaded_config = { path = path, defaults = cfg.defaults or {} }
  return loaded_config
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
