-- examples/game_loop.lua: a simulated 60 fps game loop that makes three videos without ever
-- blocking a frame: each frame calls client:poll(0), starts downloads when results are ready, and
-- the loop reports its worst frame time at the end.
--
--   lua5.4 examples/game_loop.lua [outdir]
--
-- Environment: APIMART_API_KEY; PIXFLOW_SANDBOX=URL runs it against a sandbox.
local pixflow = require "pixflow"

local outdir = arg[1] or "out"
-- the output directory, created when missing (a fresh checkout has no out/)
local function mkdir_p(dir)
  if dir == "" or dir == "." then return end
  if not os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'") then
    io.stderr:write("game_loop: cannot create the directory ", dir, "\n")
    os.exit(1)
  end
end
mkdir_p(outdir)
local sandbox = os.getenv("PIXFLOW_SANDBOX")
local client = assert(pixflow.new{ provider = "apimart",
  base_url = sandbox and (sandbox .. "/apimart") or nil,
  poll = sandbox and { initial = 0.3, interval = 0.3 } or nil })

local tasks = {}
for i, prompt in ipairs({ "a knight at the gate", "a dragon over the hills", "a feast in the hall" }) do
  tasks[i] = assert(client:submit{ prompt = prompt, duration = 5 })
end

local FRAME = 1 / 60
local frames, worst, work = 0, 0, 0
local done = 0
while done < #tasks do
  local start = pixflow.now()
  -- the game's frame: pixflow's share is one poll(0), plus a look at each task
  local t0 = pixflow.now()
  client:poll(0)
  done = 0
  for i, t in ipairs(tasks) do
    if t.status == "succeeded" and t:download_state() == "none" then
      assert(t:start_download(("%s/castle-%d.mp4"):format(outdir, i)))
    end
    if t.path or (t.done and t.status ~= "succeeded") then done = done + 1 end
  end
  local spent = pixflow.now() - t0
  work = work + spent
  if spent > worst then worst = spent end
  frames = frames + 1
  -- the rest of the frame (rendering, here: waiting out the 16.7 ms)
  while pixflow.now() - start < FRAME do end
end
for i, t in ipairs(tasks) do print(("video %d: %s %s"):format(i, t.status, t.path or tostring(t.error))) end
print(("frames: %d, pixflow's worst frame: %.3f ms, mean: %.3f ms"):format(frames, worst * 1000, work / frames * 1000))
client:close()
