--- pixflow: make Pixverse videos through any of its API gateways, in one call.
--
--   local pixflow = require "pixflow"
--   local client = assert(pixflow.new{ provider = "apimart" })       -- key from APIMART_API_KEY
--   local task = assert(client:submit{ prompt = "@hero walks into @city", references = {...} })
--   assert(task:wait{ timeout = 600 })
--   assert(task:download("out.mp4"))
--
-- Conventions: misuse (wrong types, unknown fields) raises "bad argument ..."; every runtime
-- failure returns nil, err (a pixflow.error); times are seconds; nothing blocks longer than the
-- timeout it was given, and client:poll(0) returns at once.
--
-- This file is the module's entry: what `require "pixflow"` gives. The parts live in their own
-- modules: pixflow.client (the Client), pixflow.task (the task methods), pixflow.chains, pixflow.follow
-- (the one wait loop), pixflow.workflow, pixflow.fallback, pixflow.batch, pixflow.resume.
local core = require "pixflow.core"
local errors = require "pixflow.errors"
local options = require "pixflow.options"
local providers = require "pixflow.providers"
local capabilities = require "pixflow.capabilities"
local workflow = require "pixflow.workflow"
local fallback = require "pixflow.fallback"
local client = require "pixflow.client"
require "pixflow.task"                        -- wait, cancel, download, ... on every pixflow.Task

local M = {
  _VERSION = core._VERSION,
  is_error = errors.is,
  new_error = errors.new,
  capabilities = capabilities.get,
  providers = function() providers.config() return providers.names() end,
  now = core.now,
  run = workflow.run,
  new_flow = workflow.new_flow,
  all = workflow.all,
  race = workflow.race,
  Client = client.Client,
}

--- Create a client for one gateway (see pixflow/client.lua).
-- syntax: client, err = pixflow.new{ provider = "apimart", api_key = ..., base_url = ..., ... }
-- The API key defaults to the provider's environment variable (APIMART_API_KEY, ...).
-- Returns: Client, or nil and an error (kind "auth" when no key is found).
M.new = client.new

--- Run many requests from a manifest (see pixflow/batch.lua).
-- syntax: summary, err = pixflow.batch("shots.json", { concurrency = 4, journal = path })
function M.batch(manifest, opts)
  local b = require "pixflow.batch"
  local items, err = manifest
  if type(manifest) == "string" then
    items, err = b.load(manifest)
    if not items then return nil, err end
  elseif type(manifest) ~= "table" then
    options.fail("batch", 1, 2, "a manifest path or a list of items expected, got %s", type(manifest))
  end
  return b.run(items, opts)
end

--- Define a preset on an existing wire protocol (another relay of the PixVerse API, say).
-- syntax: pixflow.define_provider("myrelay", { based_on = "quickrouter", base_url = "https://...",
--                                             key_env = "MYRELAY_API_KEY" })
function M.define_provider(name, spec)
  providers.define(name, spec, 2)
  return M
end

--- The same request on one gateway after another (see pixflow/fallback.lua).
-- syntax: fb = pixflow.fallback({ {provider = "apimart"}, {provider = "dashscope"} }, { on_moderated = "stop" })
function M.fallback(list, opts)
  return fallback.new(M.new, list, opts)
end

--- Re-attach to every task of a journal that is not finished, with the gateway, base URL and
-- model recorded when it was submitted; poll them and download what succeeded (to the path the
-- journal recorded). Never submits anything. Tasks another live process follows are left to it.
-- syntax: report, err = pixflow.resume{ journal = path, keys = { dashscope = "..." }, timeout = 1800 }
-- Returns a report { tasks = { {key, provider, id, status, path, error, state, action} },
-- warnings = {...} }, or nil and an io error when the journal cannot be read.
M.resume = client.resume

--- Wait until the engine has finished what closed clients left to it: client:close() returns at
-- once, and their last journal records (and the sync and rename of a download whose bytes had all
-- arrived) are written by the engine's worker thread a moment later. The end of the Lua state
-- (a script's end, os.exit(code, true)) does this by itself; call it before reading the journal
-- from elsewhere right after a close, or before os.exit(code) without `true`.
-- syntax: done = pixflow.flush(10)   -- seconds at most (default 10); false when time ran out
function M.flush(timeout)
  if timeout ~= nil and type(timeout) ~= "number" then
    options.fail("flush", 1, 2, "timeout (number of seconds) expected, got %s", type(timeout))
  end
  return core.drain(timeout or 10)
end

return M
