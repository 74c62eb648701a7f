-- The journal's migration from JSONL (issue 12, section 1), and every download error reaching the
-- user of resume and batch (section 4).
local cjson = require "cjson"
local pixflow = require "pixflow"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local KEY = "sk-migrate-SECRET-77"

describe("an earlier pixflow's journal.jsonl", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.3, reset = true }, function(s, d) sbx, dir = s, d end)

  it("is imported once into the database; list and its --json export show everything; no key is kept", function()
    local state = dir .. "/state"
    os.execute("mkdir -p " .. state .. "/pixflow")
    local f = assert(io.open(state .. "/pixflow/journal.jsonl", "w"))
    local base = sbx.base("apimart")
    local recs = {
      { v = 1, ev = "intent", key = "k-old", provider = "apimart", base_url = base, model = "v6",
        request = { prompt = "an old one" }, output = dir .. "/old.mp4", t = 1795000000, label = "shot A" },
      { v = 1, ev = "accepted", key = "k-old", id = "task_OLD1", t = 1795000001 },
      { v = 1, ev = "status", key = "k-old", status = "succeeded", t = 1795000050 },
      { v = 1, ev = "downloaded", key = "k-old", path = dir .. "/old.mp4", t = 1795000060 },
      { v = 1, ev = "intent", key = "k-open", provider = "apimart", base_url = base, model = "v6",
        request = { prompt = "still running" }, output = dir .. "/open.mp4", t = 1795000100 },
      { v = 1, ev = "accepted", key = "k-open", id = "task_OPEN2", t = 1795000101 },
    }
    for _, r in ipairs(recs) do f:write(cjson.encode(r), "\n") end
    f:close()
    local env = ("APIMART_API_KEY=%s XDG_STATE_HOME=%s"):format(KEY, state)
    local status, out = util.run(env .. " bin/pixflow list --json")
    assert.equal(0, status, out)
    local rows = {}
    for line in out:gmatch("[^\n]+") do
      local ok, ev = pcall(cjson.decode, line)
      if ok and ev.event == "task" then rows[ev.key] = ev end
    end
    assert.equal("downloaded", rows["k-old"].status)
    assert.equal("task_OLD1", rows["k-old"].id)
    assert.equal("shot A", rows["k-old"].label)
    assert.equal("an old one", rows["k-old"].request.prompt)
    assert.equal("task_OPEN2", rows["k-open"].id)
    assert.equal("open", rows["k-open"].state)
    -- in the database now, imported once: a second open adds nothing
    local db = state .. "/pixflow/journal.db"
    assert.is_true(util.exists(db))
    status, out = util.run(env .. " bin/pixflow list --events")
    assert.equal(0, status, out)
    local n = 0
    for _ in out:gmatch('"ev":"intent"') do n = n + 1 end
    assert.equal(2, n)
    status, out = util.run(env .. " bin/pixflow list")
    assert.equal(0, status, out)
    assert.matches("task_OLD1", out)
    assert.equal(2, util.journal_count(db, "intent"))
    -- what the old runs left is finished from the database
    status, out = util.run(env .. (" bin/pixflow resume --sandbox %s --poll 0.2 --timeout 10"):format(sbx.url))
    assert.is_nil(util.journal_bytes(db):find(KEY, 1, true))
    assert.is_nil(out:find(KEY, 1, true))
  end)
end)

describe("a download that fails", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.3, reset = true }, function(s, d) sbx, dir = s, d end)

  -- A task that succeeded at the gateway and was never downloaded (its process ended first).
  local function succeeded_not_downloaded(path, out)
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  journal = path, poll = { initial = 0.05, interval = 0.1 } })
    local t = assert(c:submit({ prompt = "paid" }, { output = out }))
    assert(t:wait{ timeout = 10 })
    c:close()
    return t
  end

  it("is reported by resume, which does not say succeeded nor exit 0", function()
    local state = dir .. "/s1"
    local path, out = state .. "/pixflow/journal.db", dir .. "/r.mp4"
    succeeded_not_downloaded(path, out)
    sbx.faults{ { gateway = "apimart", route = "download", action = "reply", status = 404, body = "gone" } }
    local status, text = util.run(("APIMART_API_KEY=k XDG_STATE_HOME=%s bin/pixflow resume --journal %s --sandbox %s "
      .. "--poll 0.1 --timeout 20"):format(state, path, sbx.url))
    assert.is_false(util.exists(out))
    assert.are_not.equal(0, status, text)
    assert.matches("HTTP 404", text)
    assert.matches("failed", text)
    assert.is_nil(text:find("succeeded", 1, true))
  end)

  it("is reported by batch with its error", function()
    local path, out = dir .. "/b.db", dir .. "/b.mp4"
    sbx.faults{ { gateway = "apimart", route = "download", action = "reply", status = 404, body = "gone" } }
    local summary = assert(pixflow.batch({ { output = out, prompt = "x" } }, {
      journal = path, keys = { apimart = "k" }, base_urls = { apimart = sbx.base("apimart") },
      poll = { initial = 0.05, interval = 0.1 }, timeout = 20 }))
    assert.equal("failed", summary[1].status)
    assert.is_not_nil(summary[1].error, "the download's error was dropped")
    assert.matches("HTTP 404", tostring(summary[1].error))
    assert.is_false(util.exists(out))
  end)
end)
