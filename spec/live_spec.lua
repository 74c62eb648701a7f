-- Opt-in checks against the real gateways: they spend real credits. Excluded from `make test`
-- (tag "live"); run them with `make test-live`. Each gateway's check runs one real fusion
-- generation and downloads it, and is skipped unless its key variable (APIMART_API_KEY, ...)
-- and PIXFLOW_LIVE_IMAGE (a public image URL; a local file works where the gateway uploads)
-- are set. docs/gateways.md says what each one verifies first.
local pixflow = require "pixflow"
local providers = require "pixflow.providers"

for _, name in ipairs(providers.names()) do
  describe("#live " .. name, function()
    local preset = providers.preset(name)
    local key, image = os.getenv(preset.key_env), os.getenv("PIXFLOW_LIVE_IMAGE")
    if not (key and image) then
      pending(("set %s and PIXFLOW_LIVE_IMAGE to run"):format(preset.key_env))
      return
    end
    it("one real fusion generation, downloaded", function()
      local client = assert(pixflow.new{ provider = name })
      local task = assert(client:submit{ prompt = "@subject turns to the camera and smiles",
        references = { { name = "subject", image = image } }, duration = 5, resolution = "540p" })
      local ok, err = task:wait{ timeout = 900, on_progress = function(t)
        io.stderr:write(("live %s: %s %s %s\n"):format(name, tostring(t.id), t.status, tostring(t.progress)))
      end }
      assert(ok, tostring(err))
      local out = os.tmpname() .. ".mp4"
      assert(task:download(out))
      print(("live %s: task %s -> %s"):format(name, task.id, out))
    end)
  end)
end
