-- Batches: CSV and JSON manifests, the per-gateway limit, reruns that skip what is done, and an
-- unconfirmed submit that is never sent again.
local pixflow = require "pixflow"
local batch = require "pixflow.batch"
local cjson = require "cjson"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

describe("batch", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.4, reset = true }, function(s, d) sbx, dir = s, d end)

  local function base_urls()
    local b = {}
    for _, p in ipairs(pixflow.providers()) do b[p] = sbx.base(p) end
    return b
  end

  it("reads a CSV manifest (quoted fields, references, numbers) relative to its directory", function()
    local f = assert(io.open(dir .. "/shots.csv", "w"))
    f:write('output,provider,prompt,references,duration,resolution\n')
    f:write('one.mp4,apimart,"@hero walks, slowly",hero=' .. util.abspath("spec/fixtures/images/hero.png") .. ',5,540p\n')
    f:write('two.mp4,jiekou,"@a and @b","a=https://e.com/a.png;b=https://e.com/b.png:background",8,\n')
    f:close()
    local items = assert(batch.load(dir .. "/shots.csv"))
    assert.equal(2, #items)
    assert.equal(dir .. "/one.mp4", items[1].output)
    assert.equal("@hero walks, slowly", items[1].prompt)
    assert.equal(5, items[1].duration)
    assert.equal("background", items[2].references[2].type)
    assert.is_nil(items[2].resolution)
    local summary = assert(pixflow.batch(items, { base_urls = base_urls(), keys = { apimart = "k", jiekou = "k" },
                                                  poll = { initial = 0.05, interval = 0.1 } }))
    assert.equal("downloaded", summary[1].status)
    assert.equal("downloaded", summary[2].status)
  end)

  it("keeps at most `concurrency` tasks of a gateway in flight", function()
    local items = {}
    -- outputs in directories that do not exist yet: the batch makes them
    for i = 1, 6 do items[i] = { output = ("%s/new/sub/c%d.mp4"):format(dir, i), prompt = "shot " .. i } end
    local running, most = 0, 0
    local summary = assert(pixflow.batch(items, { base_urls = base_urls(), keys = { apimart = "k" }, concurrency = 2,
      poll = { initial = 0.05, interval = 0.1 },
      on_event = function(e)
        if e.event == "submitted" then running = running + 1 end
        if e.event == "finished" then running = running - 1 end
        most = math.max(most, running)
      end }))
    assert.equal(2, most)
    for _, r in ipairs(summary) do assert.equal("downloaded", r.status) end
  end)

  it("a rerun skips finished files, and an unconfirmed submit is never sent again", function()
    local journal_path = dir .. "/batch.jsonl"
    local items = { { output = dir .. "/r1.mp4", prompt = "one" }, { output = dir .. "/r2.mp4", prompt = "two" } }
    -- r2 was submitted by an earlier run that died before the answer (apimart has no task list)
    local f = assert(io.open(journal_path, "w"))
    f:write(cjson.encode{ v = 1, ev = "intent", key = "old", provider = "apimart", base_url = sbx.base("apimart"),
                          model = "v6", output = dir .. "/r2.mp4", request = { prompt = "two" }, t = 1 }, "\n")
    f:close()
    local opts = { base_urls = base_urls(), keys = { apimart = "k" }, journal = journal_path,
                   poll = { initial = 0.05, interval = 0.1 } }
    local summary = assert(pixflow.batch(items, opts))
    assert.equal("downloaded", summary[1].status)
    assert.equal("unconfirmed", summary[2].status)
    assert.matches("never answered", summary[2].action)
    summary = assert(pixflow.batch(items, opts))
    assert.equal("done", summary[1].status)
    assert.equal("unconfirmed", summary[2].status)
    assert.equal(1, sbx.stats().apimart.submits)
  end)
end)
