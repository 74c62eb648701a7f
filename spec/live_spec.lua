-- Opt-in checks against the real gateways: they spend real credits. Excluded from `make test`
-- (tag "live"); run them with `make test-live`. Each one is skipped
-- unless its key and a public reference image URL are in the environment.
local pixflow = require "pixflow"

describe("#live apimart", function()
  local key, image = os.getenv("APIMART_API_KEY"), os.getenv("PIXFLOW_LIVE_IMAGE")
  if not (key and image) then
    pending("set APIMART_API_KEY and PIXFLOW_LIVE_IMAGE (a public image URL) to run")
    return
  end
  it("one real fusion generation, downloaded", function()
    local client = assert(pixflow.new{ provider = "apimart" })
    local task = assert(client:submit{ prompt = "@subject turns to the camera and smiles",
      references = { { name = "subject", image = image } }, duration = 5, resolution = "360p" })
    assert(task:wait{ timeout = 900 })
    local out = os.tmpname() .. ".mp4"
    assert(task:download(out))
    print("live apimart: " .. task.id .. " -> " .. out)
  end)
end)
