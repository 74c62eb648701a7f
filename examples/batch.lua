-- examples/batch.lua: many shots from a manifest (examples/shots.json), at most two at a time per
-- gateway, each to its own file, with a summary. Run it again: finished shots are skipped.
--
--   lua5.4 examples/batch.lua [manifest] [journal]
--
-- Environment: the keys of the gateways the manifest names (APIMART_API_KEY, ...);
-- PIXFLOW_SANDBOX=URL runs it against a sandbox.
local pixflow = require "pixflow"
local batch = require "pixflow.batch"

local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
local manifest = arg[1] or (here .. "/shots.json")
local sandbox = os.getenv("PIXFLOW_SANDBOX")
local base_urls
if sandbox then
  base_urls = {}
  for _, p in ipairs(pixflow.providers()) do base_urls[p] = sandbox .. "/" .. p end
end
os.execute("mkdir -p '" .. here .. "/out'")
local summary, err = pixflow.batch(manifest, {
  concurrency = 2, base_urls = base_urls, journal = arg[2],
  poll = sandbox and { initial = 0.3, interval = 0.3 } or nil,
  on_event = function(ev)
    if ev.event == "finished" then print(("  %s %s %s"):format(ev.status, ev.provider, ev.output)) end
  end,
})
if not summary then
  io.stderr:write("batch: ", tostring(err), "\n")
  os.exit(1)
end
for _, line in ipairs(batch.format(summary)) do print(line) end
for _, r in ipairs(summary) do
  if r.status ~= "downloaded" and r.status ~= "done" then os.exit(1) end
end
