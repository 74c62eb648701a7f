-- apimart end to end against the local sandbox: every mode, every documented error, downloads,
-- re-attaching, and /_sandbox/stats proving that nothing was sent twice.
local pixflow = require "pixflow"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local KEY = "sk-apimart-SECRET-0123456789abcdef"
local sbx, dir

local function new_client(key, extra)
  local opts = { provider = "apimart", api_key = key or KEY, base_url = sbx.base("apimart"),
                 poll = { initial = 0.05, interval = 0.1, max = 0.3, jitter = 0 } }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(pixflow.new(opts))
end

local function is_mp4(path)
  local data = util.read(path)
  return data ~= nil and data:sub(5, 8) == "ftyp", data
end

local REFS = {
  { name = "hero", image = "https://e.com/hero.png" },
  { name = "city", image = "https://e.com/city.jpg", type = "background" },
  { name = "cat", image = "https://e.com/cat.png" },
}

describe("apimart end to end", function()
  sandbox.around({ task_seconds = 0.4, reset = true }, function(s, d) sbx, dir = s, d end)

  local modes = {
    text = { prompt = "a corgi in a sunflower field", aspect_ratio = "21:9", duration = 8, seed = 42, audio = true },
    image = { prompt = "zoom in slowly", image = "https://e.com/first.jpg", resolution = "540p" },
    transition = { prompt = "a puppy becomes a cat", first_frame = "https://e.com/p.jpg",
                   last_frame = "https://e.com/c.jpg", duration = 5 },
    fusion = { prompt = "@hero walks into @city with @cat", references = REFS, aspect_ratio = "9:16",
               resolution = "720p", duration = 5 },
  }
  for mode, req in pairs(modes) do
    it(mode .. " mode: submit, wait, download an MP4, one task created", function()
      local client = new_client()
      local task = assert(client:submit(req))
      assert.equal(mode, task.mode)
      local seen = {}
      assert(task:wait{ timeout = 10, on_progress = function(t) seen[#seen + 1] = t.status end })
      assert.equal("succeeded", task.status)
      assert.equal(100, task.progress)
      assert.matches("^task_01", task.id)
      assert.same({ amount = 0.2, unit = "USD" }, task.cost)
      assert.equal(1, #task.videos)
      assert.equal(task.video_url, task.videos[1].url)
      assert.truthy(task.videos[1].expires_at)
      assert.equal("submitting", seen[1])
      assert.equal("succeeded", seen[#seen])
      local out = dir .. "/" .. mode .. ".mp4"
      assert.equal(out, assert(task:download(out)))
      assert.is_true(is_mp4(out))
      assert.is_false(util.exists(out .. ".part"))
      assert.equal(out, task.path)
      local st = sbx.stats().apimart
      assert.equal(1, st.submits)
      assert.equal(1, st.tasks)
      assert.equal(1, st.downloads)
      assert.is_true(st.polls >= 2)
      client:close()
    end)
  end

  it("extend mode, from a finished task (object or id)", function()
    local client = new_client()
    local src = assert(client:submit{ prompt = "a hero at dawn" })
    assert(src:wait{ timeout = 10 })
    local ext = assert(client:submit{ prompt = "the hero walks on", extend_from = src, duration = 5 })
    assert.equal("extend", ext.mode)
    assert(ext:wait{ timeout = 10 })
    local ext2 = assert(client:submit{ prompt = "and on", extend_from = src.id })
    assert(ext2:wait{ timeout = 10 })
    assert.equal(3, sbx.stats().apimart.tasks)
    client:close()
  end)

  it("the demo request: three references with @names, rewritten to image N", function()
    local client = new_client()
    local task = assert(client:submit{ prompt = "@hero runs through @city chasing @cat", references = REFS })
    assert(task:wait{ timeout = 10 })
    assert(task:download(dir .. "/demo.mp4"))
    assert.is_true(is_mp4(dir .. "/demo.mp4"))
    client:close()
  end)

  describe("gateway errors map to kinds", function()
    local cases = {
      { "invalid", "auth", 401 }, { "noquota", "quota", 403 }, { "ratelimit", "rate_limit", 429 },
    }
    for _, c in ipairs(cases) do
      it(("key %q gives %s"):format(c[1], c[2]), function()
        -- a 429 before acceptance created nothing: the submit is sent again (Retry-After 1 s,
        -- capped here at 0.05 s), up to submit_attempts, then the error is the gateway's
        local client = new_client(c[1], { retry = { after_max = 0.05, submit_attempts = 2 } })
        local task = assert(client:submit{ prompt = "x" })
        local ok, err = task:wait{ timeout = 5 }
        assert.is_nil(ok)
        assert.equal("failed", task.status)
        assert.equal(c[2], err.kind)
        assert.equal(c[3], err.status)
        assert.equal("apimart", err.provider)
        local st = sbx.stats().apimart
        if c[2] == "rate_limit" then
          assert.is_true(err.retryable)
          assert.equal(0.05, err.retry_after)     -- the wait pixflow applies: Retry-After capped
          assert.matches("asked to wait 1 s; pixflow waits at most retry.after_max", err.message, 1, true)
          assert.matches("2 attempts; nothing was accepted, so nothing was charged", err.message, 1, true)
        end
        assert.equal(c[2] == "rate_limit" and 2 or 1, st.submits)
        assert.equal(0, st.tasks)
        assert.equal(0, st.polls)
        client:close()
      end)
    end

    it("a gateway 400 (extending an unknown task) is invalid, with the gateway's words", function()
      local client = new_client()
      local task = assert(client:submit{ prompt = "x", extend_from = "task_01NOPE" })
      local ok, err = task:wait{ timeout = 5 }
      assert.is_nil(ok)
      assert.equal("invalid", err.kind)
      assert.equal(400, err.status)
      assert.matches("is not a task of this account", err.message)
      client:close()
    end)

    it("a generation that fails", function()
      local client = new_client()
      local task = assert(client:submit{ prompt = "a storm #fail" })
      local ok, err = task:wait{ timeout = 5 }
      assert.is_nil(ok)
      assert.equal("failed", task.status)
      assert.equal("failed", err.kind)
      assert.equal(task.id, err.task_id)
      local path, derr = task:download(dir .. "/never.mp4")
      assert.is_nil(path)
      assert.equal("failed", derr.kind)
      assert.is_false(util.exists(dir .. "/never.mp4"))
      client:close()
    end)

    it("a moderated generation", function()
      local client = new_client()
      local task = assert(client:submit{ prompt = "#moderate" })
      local ok, err = task:wait{ timeout = 5 }
      assert.is_nil(ok)
      assert.equal("moderated", task.status)
      assert.equal("moderated", err.kind)
      assert.matches("moderation failed", err.message)
      client:close()
    end)

    it("success without a video URL is a failure", function()
      local client = new_client()
      local task = assert(client:submit{ prompt = "#novideo" })
      local ok, err = task:wait{ timeout = 5 }
      assert.is_nil(ok)
      assert.equal("failed", task.status)
      assert.equal("no_video_url", err.code)
      client:close()
    end)

    it("a result that is not an MP4 is refused and nothing is saved", function()
      local client = new_client()
      local task = assert(client:submit{ prompt = "#notmp4" })
      local path, err = task:download(dir .. "/fake.mp4", { timeout = 5 })
      assert.is_nil(path)
      assert.equal("protocol", err.kind)
      assert.equal("not_mp4", err.code)
      assert.is_false(util.exists(dir .. "/fake.mp4"))
      assert.is_false(util.exists(dir .. "/fake.mp4.part"))
      client:close()
    end)
  end)

  it("a large result streams to disk complete", function()
    local client = new_client()
    local size = 3 * 1024 * 1024 + 17
    local task = assert(client:submit{ prompt = "big #size=" .. size })
    local out = dir .. "/big.mp4"
    assert(task:download(out, { timeout = 30 }))
    local ok, data = is_mp4(out)
    assert.is_true(ok)
    assert.equal(size, #data)
    client:close()
  end)

  it("an expired result URL is refreshed from the task's status, once, then downloaded", function()
    local client = new_client()
    local task = assert(client:submit{ prompt = "x #urlttl=0.2" })
    assert(task:wait{ timeout = 10 })
    local deadline = pixflow.now() + 0.5
    while pixflow.now() < deadline do client:poll(0.05) end   -- the URL it holds expires
    local polls = sbx.stats().apimart.polls
    local out = dir .. "/refreshed.mp4"
    assert.equal(out, assert(task:download(out, { timeout = 10 })))
    assert.is_true(is_mp4(out))
    local st = sbx.stats().apimart
    assert.equal(polls + 1, st.polls)         -- one status read for a fresh URL
    assert.equal(1, st.downloads)
    assert.equal(1, st.errors)                -- the one 403 of the expired URL
    client:close()
  end)

  it("max_download_bytes holds", function()
    local client = new_client(nil, { max_download_bytes = 100000 })
    local task = assert(client:submit{ prompt = "big #size=300000" })
    local path, err = task:download(dir .. "/capped.mp4", { timeout = 10 })
    assert.is_nil(path)
    assert.equal("too_large", err.code)
    assert.is_false(util.exists(dir .. "/capped.mp4"))
    client:close()
  end)

  it("max_body_bytes caps an API reply: a huge status is an error, not memory", function()
    -- a status read is idempotent, so a bad reply is read again (retry.poll_failures times)
    local client = new_client(nil, { max_body_bytes = 64 * 1024,
                                     retry = { base = 0.01, max = 0.02, poll_failures = 3 } })
    local task = assert(client:submit{ prompt = "x #bigreply=5000000" })
    local ok, err = task:wait{ timeout = 10 }
    assert.is_nil(ok)
    assert.equal("too_large", err.code)
    assert.matches("larger than 65536 bytes", err.message)
    assert.matches("3 status polls in a row failed", err.message)
    assert.is_true(task.halted)
    client:close()
  end)

  it("a download into a missing directory makes it; a file in the way is refused, naming output", function()
    local client = new_client()
    local task = assert(client:submit{ prompt = "x" })
    assert.equal(dir .. "/no/such/dir/out.mp4", task:download(dir .. "/no/such/dir/out.mp4", { timeout = 10 }))
    assert.equal("ftyp", util.read(dir .. "/no/such/dir/out.mp4"):sub(5, 8))
    local path, err = task:download(dir .. "/no/such/dir/out.mp4/x.mp4", { timeout = 10 })
    assert.is_nil(path)
    assert.equal("invalid", err.kind)
    assert.equal("output", err.problems[1].field)
    assert.matches("is a regular file, not a directory", err.message, 1, true)
    client:close()
  end)

  it("re-attaches by id and downloads, without submitting again", function()
    local client = new_client()
    local task = assert(client:submit{ prompt = "x" })
    assert(task:wait{ timeout = 10 })
    local id = task.id
    client:close()
    local other = new_client()
    local again = other:task(id)
    assert.equal(id, again.id)
    assert(again:wait{ timeout = 10 })
    assert(again:download(dir .. "/again.mp4"))
    assert.equal(1, sbx.stats().apimart.submits)
    other:close()
  end)

  it("an unknown id halts with not_found; waiting again polls again", function()
    local client = new_client()
    local task = client:task("task_01DOESNOTEXIST")
    local ok, err = task:wait{ timeout = 5 }
    assert.is_nil(ok)
    assert.equal("not_found", err.kind)
    assert.is_true(task.halted)
    local polls = sbx.stats().apimart.polls
    ok, err = task:wait{ timeout = 5 }
    assert.is_nil(ok)
    assert.equal("not_found", err.kind)
    assert.equal(polls + 1, sbx.stats().apimart.polls)
    client:close()
  end)

  it("a wait that times out says the task may still be billed, and the task stays alive", function()
    local client = new_client()
    local task = assert(client:submit{ prompt = "slow #never" })
    local t0 = pixflow.now()
    local ok, err = task:wait{ timeout = 0.5 }
    assert.is_nil(ok)
    assert.is_true(pixflow.now() - t0 < 2)
    assert.equal("timeout", err.kind)
    assert.matches("may still finish and be billed", tostring(err))
    assert.equal(1, client:inflight())
    assert.equal(1, sbx.stats().apimart.submits)
    client:close()
  end)

  it("a refused connection fails the submit and says nothing was charged", function()
    -- a connection that never happened is retried (retry.submit_attempts, full-jitter back-off
    -- of up to 1 + 2 + 4 s by default): a short back-off keeps this well inside the wait
    local client = assert(pixflow.new{ provider = "apimart", api_key = KEY, base_url = "http://127.0.0.1:9",
                                       retry = { base = 0.01, max = 0.02 } })
    local task = assert(client:submit{ prompt = "x" })
    local ok, err = task:wait{ timeout = 5 }
    assert.is_nil(ok)
    assert.equal("failed", task.status)
    assert.equal("transport", err.kind)
    assert.equal("COULDNT_CONNECT", err.code)
    assert.matches("nothing was charged", err.message)
    client:close()
  end)

  it("a validation failure sends nothing", function()
    local client = new_client()
    assert.is_nil((client:submit{ prompt = "x", duration = 99 }))
    client:poll(0.1)
    assert.equal(0, sbx.stats().apimart.submits)
    client:close()
  end)

  it("on_change listeners see every change, once per pump", function()
    local client = new_client()
    local statuses = {}
    client:on_change(function(t) statuses[#statuses + 1] = t.status end)
    local task = assert(client:submit{ prompt = "x" })
    assert(task:wait{ timeout = 10 })
    assert.equal("succeeded", statuses[#statuses])
    assert.is_true(#statuses >= 2)
    client:close()
  end)

  it("the API key appears in no error, task, client or status text", function()
    local seen = {}
    local function keep(v) seen[#seen + 1] = tostring(v) end
    for _, key in ipairs({ KEY, "invalid" }) do
      local client = new_client(key)
      keep(client)
      local t = assert(client:submit{ prompt = "@hero x", references = REFS })
      keep(t)
      local _, err = t:wait{ timeout = 5 }
      keep(err); keep(t); keep(t.error)
      local _, verr = client:submit{ prompt = "x", duration = 77 }
      keep(verr)
      keep(select(2, t:download(dir .. "/nope/x.mp4")))
      client:close()
    end
    local all = table.concat(seen, "\n")
    assert.is_nil(all:find(KEY, 1, true))
    assert.is_nil(all:find("SECRET", 1, true))
  end)

  it("no API key at all is an auth error that names the variable", function()
    local client, err = pixflow.new{ provider = "apimart", api_key = "" }
    assert.is_nil(client)
    assert.equal("auth", err.kind)
    assert.matches("APIMART_API_KEY", tostring(err))
  end)
end)
