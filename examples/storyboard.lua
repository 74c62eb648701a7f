-- examples/storyboard.lua: a three-shot storyboard: generate a shot, then extend it twice, with a
-- second gateway to fall back on if the first refuses or fails. Written as a workflow.
--
--   lua5.4 examples/storyboard.lua [outdir]
--
-- Environment: APIMART_API_KEY and PIXVERSE_API_KEY (the fallback); PIXFLOW_SANDBOX=URL runs it
-- against a sandbox (no credits); PIXFLOW_HERO a reference image (URL or local file).
local pixflow = require "pixflow"

local outdir = arg[1] or "out"
-- the output directory, created when missing (a fresh checkout has no out/)
local function mkdir_p(dir)
  if dir == "" or dir == "." then return end
  if not os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'") then
    io.stderr:write("storyboard: cannot create the directory ", dir, "\n")
    os.exit(1)
  end
end
mkdir_p(outdir)
local sandbox = os.getenv("PIXFLOW_SANDBOX")
local poll = sandbox and { initial = 0.3, interval = 0.3 } or nil
local function gateway(provider)
  return { provider = provider, base_url = sandbox and (sandbox .. "/" .. provider) or nil, poll = poll }
end
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
local hero = os.getenv("PIXFLOW_HERO") or (here .. "/../spec/fixtures/images/hero.png")

local story = pixflow.fallback{ gateway("apimart"), gateway("pixverse") }

-- a refused submit (no key, a bad request, no quota) comes back as nil, err: the flow returns it
-- as it is, so that the user reads what is wrong, not a workflow traceback
local ok, result = pixflow.run(function()
  local shot, err = story:submit{ prompt = "@hero wakes up in a small attic room, morning light",
                                  references = { { name = "hero", image = hero } }, duration = 5 }
  if not shot then return nil, err end
  assert(shot:await())
  print(("shot 1: %s task %s (%d gateway%s tried)"):format(shot.provider, shot.id, #shot.attempts,
    #shot.attempts == 1 and "" or "s"))
  -- the extensions go to the gateway that made the first shot; the second waits for the first
  local client = shot.client
  local ext1 = assert(client:submit{ prompt = "the hero walks down the stairs", extend_from = shot.task })
  local ext2 = assert(client:submit{ prompt = "the hero steps out into the rain", extend_from = ext1 })
  assert(pixflow.all{ ext1, ext2 })
  local files = {}
  for i, t in ipairs({ shot.task, ext1, ext2 }) do
    files[i] = assert(t:download(("%s/storyboard-%d.mp4"):format(outdir, i)))
    print(("shot %d: %s -> %s"):format(i, t.id, files[i]))
  end
  return files
end)
story:close()
if not ok then
  io.stderr:write("storyboard: ", tostring(result), "\n")
  if pixflow.is_error(result) and result.kind == "auth" and (os.getenv("APIMART_API_KEY") or "") == ""
     and (os.getenv("PIXVERSE_API_KEY") or "") == "" then
    io.stderr:write("storyboard: no API key: set APIMART_API_KEY (or PIXVERSE_API_KEY, the fallback), "
      .. "or run it against a sandbox with PIXFLOW_SANDBOX=URL and any key\n")
  end
  os.exit(1)
end
