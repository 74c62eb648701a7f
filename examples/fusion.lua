-- examples/fusion.lua: three reference images, one prompt with @names, one MP4 on disk.
--
--   lua5.4 examples/fusion.lua [out.mp4]
--
-- Environment:
--   APIMART_API_KEY     your apimart key (required)
--   PIXFLOW_BASE_URL    another base URL, e.g. the sandbox's http://127.0.0.1:PORT/apimart
--   PIXFLOW_REF_HERO, PIXFLOW_REF_CITY, PIXFLOW_REF_CAT   public image URLs to use instead
--                       of the placeholders below (a real gateway must be able to fetch them)
--   PIXFLOW_POLL        status poll interval in seconds (default: the provider's, 5 s)
local pixflow = require "pixflow"

local out = arg[1] or "out.mp4"
-- the output directory, created when missing (a fresh checkout has no out/)
local function mkdir_p(dir)
  if dir == "" or dir == "." then return end
  if not os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'") then
    io.stderr:write("fusion: cannot create the directory ", dir, "\n")
    os.exit(1)
  end
end
mkdir_p(out:match("^(.*)/[^/]*$") or ".")
local poll = tonumber(os.getenv("PIXFLOW_POLL"))

local client, err = pixflow.new{
  provider = "apimart",
  base_url = os.getenv("PIXFLOW_BASE_URL"),            -- nil: the real https://api.apimart.ai
  poll = poll and { initial = poll, interval = poll } or nil,
}
if not client then
  io.stderr:write("fusion: ", tostring(err), "\n")
  os.exit(1)
end

local task, serr = client:submit{
  model = "v6",
  prompt = "@hero runs through @city at dusk, chasing @cat across the rooftops",
  references = {
    { name = "hero", image = os.getenv("PIXFLOW_REF_HERO") or "https://example.com/hero.png" },
    { name = "city", image = os.getenv("PIXFLOW_REF_CITY") or "https://example.com/city.jpg",
      type = "background" },
    { name = "cat", image = os.getenv("PIXFLOW_REF_CAT") or "https://example.com/cat.png" },
  },
  duration = 5, resolution = "720p", aspect_ratio = "16:9",
}
if not task then
  io.stderr:write("fusion: ", tostring(serr), "\n")
  os.exit(1)
end

local started = pixflow.now()
local tty = os.execute("test -t 1") == true   -- a terminal gets one updating line
local function progress(t)
  local line = ("%s %-30s %-10s %3s%%  %4.1f s"):format(t.provider, t.id or "(submitting)",
    t.status, t.progress and tostring(t.progress) or "--", pixflow.now() - started)
  io.stdout:write(tty and ("\r" .. line) or (line .. "\n"))
  io.stdout:flush()
end

local path, derr = task:download(out, { timeout = 900, on_progress = progress })
if tty then io.stdout:write("\n") end
if not path then
  io.stderr:write("fusion: ", tostring(derr), "\n")
  if task.id then io.stderr:write("fusion: the task is ", task.id, "; `pixflow download ", task.id, "` fetches it later\n") end
  os.exit(1)
end
print(("wrote %s (%s, task %s, cost %s)"):format(path, task.provider, task.id, tostring(task.cost)))
client:close()
