-- allocfail_run.lua: one end-to-end run for the allocation-failure test (scripts/allocfail.sh):
-- uploads, submit, polls, download and the journal, on apimart and DashScope. With one
-- allocation of the C core failing somewhere in it, it must end with success or an error:
-- never a crash, a hang or a leak (the driver runs it under AddressSanitizer).
local url, dir = arg[1], arg[2]
local ok, err = pcall(function()
  local pixflow = require "pixflow"
  for _, p in ipairs({ "apimart", "dashscope" }) do
    local c, cerr = pixflow.new{ provider = p, api_key = "sk-allocfail", base_url = url .. "/" .. p,
                                 journal = dir .. "/journal.db",
                                 poll = { initial = 0.02, interval = 0.02, max = 0.05 },
                                 retry = { base = 0.01, max = 0.02, lookup_delay = 0.05 } }
    if not c then print("error", p, tostring(cerr)) return end
    local t, serr = c:submit({ prompt = "@hero runs", references = { { name = "hero", image = "spec/fixtures/images/hero.png" } } },
                             { output = dir .. "/" .. p .. ".mp4" })
    if not t then
      print("error", p, tostring(serr))
    else
      local path, derr = t:download(dir .. "/" .. p .. ".mp4", { timeout = 20 })
      print(path and "ok" or "error", p, tostring(path or derr))
    end
    c:close()
  end
end)
if not ok then print("raised", tostring(err)) end
collectgarbage("collect")
