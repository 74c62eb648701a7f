-- examples/every_gateway.lua: the same fusion request, with local reference images, on every
-- gateway pixflow knows, against the sandbox (no keys, no credits).
--
--   lua5.4 examples/every_gateway.lua http://127.0.0.1:PORT [outdir]
--
-- The sandbox's base URL comes first (start it with `bin/pixflow sandbox`). jiekou has no upload
-- call, so this script gives its client an uploader; here it returns a made-up CDN URL, which
-- the sandbox accepts because it never fetches reference images. A real uploader would put the
-- file on your own storage and return its public URL.
local pixflow = require "pixflow"

local sandbox, outdir = arg[1], arg[2] or "out"
if not sandbox then
  io.stderr:write("usage: lua5.4 examples/every_gateway.lua SANDBOX_URL [OUTDIR]\n")
  os.exit(2)
end
-- the output directory, created when missing (a fresh checkout has no out/)
local function mkdir_p(dir)
  if dir == "" or dir == "." then return end
  if not os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'") then
    io.stderr:write("every_gateway: cannot create the directory ", dir, "\n")
    os.exit(1)
  end
end
mkdir_p(outdir)
local here = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../spec/fixtures/images/"

local failed = 0
for _, provider in ipairs(pixflow.providers()) do
  local client = assert(pixflow.new{
    provider = provider, api_key = "sandbox-key", base_url = sandbox .. "/" .. provider,
    poll = { initial = 0.2, interval = 0.3 },
    uploader = provider == "jiekou" and function(path)
      return "https://cdn.example.com/" .. path:match("[^/]+$")
    end or nil,
  })
  local task, err = client:submit{
    prompt = "@hero runs through @city chasing @cat",
    references = {
      { name = "hero", image = here .. "hero.png" },
      { name = "city", image = here .. "city.jpg", type = "background" },
      { name = "cat", image = here .. "cat.webp" },
    },
    duration = 5, resolution = "540p",
  }
  local path
  if task then path, err = task:download(("%s/%s.mp4"):format(outdir, provider), { timeout = 60 }) end
  if path then
    print(("%-12s %-8s task %-40s -> %s"):format(provider, client.model, task.id, path))
  else
    failed = failed + 1
    print(("%-12s FAILED: %s"):format(provider, tostring(err)))
  end
  client:close()
end
os.exit(failed == 0 and 0 or 1)
