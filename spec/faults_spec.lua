-- The fault matrix: every way a gateway can fail, injected by the sandbox's fault plans
-- (POST /_sandbox/faults), for every gateway. Each row expects the right error kind or a
-- recovery, no hang past its deadline, the task in the journal, and /_sandbox/stats showing
-- exactly the tasks that the requests created (never a second submit of an accepted one).
local pixflow = require "pixflow"
local journal = require "pixflow.journal"
local socket = require "socket"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local sbx, dir
local IMG = "spec/fixtures/images/"
local PRESETS = { "apimart", "pixverse", "quickrouter", "dashscope", "jiekou", "baicai" }
local CLIP = util.read("spec/fixtures/clip.mp4")

local function fake_uploader(path) return "https://cdn.example.com/" .. path:match("[^/]+$") end

local function client(p, extra)
  local opts = {
    provider = p, api_key = "sk-" .. p .. "-SECRET", base_url = sbx.base(p),
    poll = { initial = 0.05, interval = 0.05, max = 0.1, jitter = 0 },
    retry = { base = 0.02, max = 0.05, after_max = 0.3, lookup_delay = 0.1 },
    timeouts = { low_speed_time = 1, low_speed_bytes = 1 },
    journal = dir .. "/" .. p .. ".jsonl",
    uploader = p == "jiekou" and fake_uploader or nil,
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(pixflow.new(opts))
end

local function request(prompt)
  return { prompt = "@hero runs " .. (prompt or ""), references = { { name = "hero", image = IMG .. "hero.png" } } }
end

-- the journal's view of the one task this spec made
local function journaled(p)
  require("pixflow").flush()      -- a closed client's last records are written by its worker
  local tasks = assert(journal.read(dir .. "/" .. p .. ".jsonl"))
  return tasks[#tasks]
end

local function stats(p) return sbx.stats()[p] end

local function run(p, prompt, extra, wait)
  local c = client(p, extra)
  local t = assert(c:submit(request(prompt)))
  local t0 = socket.gettime()
  local ok, err = t:wait{ timeout = wait or 10 }
  return c, t, ok, err, socket.gettime() - t0
end

local function succeeds(p, prompt, extra)
  local c, t, ok, err = run(p, prompt, extra)
  assert(ok, tostring(err))
  local out = dir .. "/" .. p .. ".mp4"
  assert(t:download(out, { timeout = 10 }))
  assert.equal(CLIP, util.read(out))
  local st = stats(p)
  assert.equal(1, st.tasks)
  assert.equal(1, st.submits)
  local j = journaled(p)
  assert.equal(t.id, j.id)
  assert.equal(out, j.downloaded)
  c:close()
  return st
end

-- A submit whose answer was lost: unconfirmed, never sent twice. DashScope lists its tasks,
-- so there pixflow finds the task itself and carries on.
local function unconfirmed(p, created)
  local c, t, ok, err = run(p)
  local st = stats(p)
  assert.equal(1, st.submits)
  assert.equal(created, st.tasks)
  if p == "dashscope" and created == 1 then
    assert(ok, tostring(err))
    assert.equal(journaled(p).id, t.id)
  else
    assert.is_nil(ok)
    assert.equal("unconfirmed", t.status)
    assert.equal("unconfirmed", err.kind)
    assert.matches("did not send it again", err.message)
    if p == "dashscope" then assert.matches("task list showed no task from this submit", err.message) end
    assert.equal("unconfirmed", journaled(p).state)
  end
  c:close()
end

local function closed_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

describe("fault matrix", function()
  sandbox.around({ task_seconds = 0.2, reset = true }, function(s, d) sbx, dir = s, d end)
  -- a fresh journal for every spec (the database, its WAL and its owners' lock files), once the
  -- closed clients' workers are done with the old one. SQLite's last close checks that the files
  -- are still its own, checkpoints, then deletes the WAL and -shm by name: removed and made
  -- again in between, the new journal's went instead ("disk I/O error", SQLite code 522, a short
  -- read of a WAL that was no longer there: 5 of 6 runs of the baicai rows on a loaded machine)
  local function fresh_journal() pixflow.flush() os.execute("rm -rf " .. dir .. "/*.jsonl " .. dir .. "/*.db " .. dir .. "/*.db-* "
                                            .. dir .. "/*.owners") end
  before_each(function() fresh_journal() os.execute("rm -f " .. dir .. "/*.mp4") end)

  for _, p in ipairs(PRESETS) do
    describe(p, function()
      it("connection refused: retried, then failed with nothing charged", function()
        local c, t, ok, err = run(p, nil, { base_url = ("http://127.0.0.1:%d/%s"):format(closed_port(), p),
                                            retry = { base = 0.01, max = 0.02 } })
        assert.is_nil(ok)
        assert.equal("failed", t.status)
        assert.equal("transport", err.kind)
        assert.equal("COULDNT_CONNECT", err.code)
        assert.matches("nothing was charged", err.message)
        assert.equal("failed", journaled(p).status)
        c:close()
      end)

      it("reset before the status reply: polled again, one task", function()
        sbx.faults{ { gateway = p, route = "status", action = "reset", times = 2 } }
        assert.equal(2, succeeds(p).faults)
      end)

      it("reset before the submit reply: unconfirmed, never resent", function()
        sbx.faults{ { gateway = p, route = "submit", action = "reset", times = 1 } }
        unconfirmed(p, 0)
      end)

      it("reset after the submit was accepted: unconfirmed (DashScope: found in its task list)", function()
        sbx.faults{ { gateway = p, route = "submit", action = "reset_after", times = 1 } }
        unconfirmed(p, 1)
      end)

      it("500 on status polls: polled again", function()
        sbx.faults{ { gateway = p, route = "status", action = "reply", status = 500, body = "", times = 2 } }
        succeeds(p)
      end)

      it("502 with an HTML page on the submit: unconfirmed; on a status poll: polled again", function()
        local page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
        sbx.faults{ { gateway = p, route = "submit", action = "reply", status = 502, body = page,
                      content_type = "text/html", times = 1 } }
        unconfirmed(p, 0)
        sbx.reset()
        sbx.faults{ { gateway = p, route = "status", action = "reply", status = 502, body = page,
                      content_type = "text/html", times = 1 } }
        succeeds(p)
      end)

      it("503 with Retry-After before acceptance: the submit is sent again, one task", function()
        sbx.faults{ { gateway = p, route = "submit", action = "reply", status = 503, retry_after = 1,
                      body = '{"error":"busy"}', times = 1 } }
        local c, t, ok, err, took = run(p, nil, { retry = { base = 0.01, max = 0.02, after_max = 0.3 } })
        assert(ok, tostring(err))
        local st = stats(p)
        assert.equal(2, st.submits)
        assert.equal(1, st.tasks)
        assert.is_true(took >= 0.3, "Retry-After was not honoured: " .. took)
        assert.equal(t.id, journaled(p).id)
        c:close()
      end)

      it("429 with Retry-After in the header: the submit is sent again after it", function()
        sbx.faults{ { gateway = p, route = "submit", action = "reply", status = 429, retry_after = 1,
                      body = '{"error":"too many requests"}', times = 1 } }
        local c, _, ok, err, took = run(p, nil, { retry = { base = 0.01, max = 0.02, after_max = 0.3 } })
        assert(ok, tostring(err))
        assert.equal(2, stats(p).submits)
        assert.equal(1, stats(p).tasks)
        assert.is_true(took >= 0.3, "Retry-After was not honoured: " .. took)
        c:close()
      end)

      it("429 with retry_after in the JSON body: the submit is sent again after it", function()
        sbx.faults{ { gateway = p, route = "submit", action = "reply", status = 429,
                      body = '{"error":{"message":"slow down","retry_after":0.4}}', times = 1 } }
        local c, _, ok, err, took = run(p, nil, { retry = { base = 0.01, max = 0.02, after_max = 5 } })
        assert(ok, tostring(err))
        assert.equal(2, stats(p).submits)
        assert.equal(1, stats(p).tasks)
        assert.is_true(took >= 0.4, "the body's retry_after was not honoured: " .. took)
        c:close()
      end)

      it("429 on status polls: polled again", function()
        sbx.faults{ { gateway = p, route = "status", action = "reply", status = 429, retry_after = 0,
                      body = "{}", times = 2 } }
        succeeds(p)
      end)

      it("a status reply that stalls mid-body: low_speed fires by name, polled again", function()
        -- libcurl averages speed over seconds: a limit above the half-body's rate trips it
        sbx.faults{ { gateway = p, route = "status", action = "stall", seconds = 4, times = 1 } }
        local c, t, ok, err, took = run(p, nil, { timeouts = { low_speed_time = 1, low_speed_bytes = 1000 } })
        assert(ok, tostring(err))
        assert.is_true(took < 4, "waited for the stall: " .. took)
        assert.equal("low_speed", t.last_retry.code)
        assert.equal("timeout", t.last_retry.kind)
        assert.equal(1, stats(p).tasks)
        assert.equal("succeeded", t.status)
        c:close()
      end)

      it("100 MB where JSON was expected: capped, polled again", function()
        sbx.faults{ { gateway = p, route = "status", action = "huge", size = 100 * 1024 * 1024, times = 1 } }
        succeeds(p)
      end)

      it("truncated JSON: a status poll is read again; a submit reply is unconfirmed", function()
        sbx.faults{ { gateway = p, route = "status", action = "truncate", fraction = 0.5, times = 1 } }
        succeeds(p)
        sbx.reset()
        fresh_journal()
        sbx.faults{ { gateway = p, route = "submit", action = "truncate", fraction = 0.5, times = 1 } }
        unconfirmed(p, 1)
      end)

      it("JSON of the wrong shape: a string for a status; a submit reply without an id", function()
        sbx.faults{ { gateway = p, route = "status", action = "reply_after", status = 200,
                      body = '"just a string"', times = 1 } }
        succeeds(p)
        sbx.reset()
        fresh_journal()
        sbx.faults{ { gateway = p, route = "submit", action = "reply_after", status = 200,
                      body = '{"data":{}}', times = 1 } }
        unconfirmed(p, 1)
      end)

      it("invalid UTF-8 in an error message: a clean, valid message", function()
        local body = '{"error":{"message":"bad \255\254 prompt","code":"invalid_request"},"message":"bad \255 prompt","msg":"bad \255","ErrMsg":"bad \255","code":400}'
        sbx.faults{ { gateway = p, route = "submit", action = "reply", status = 400,
                      body_hex = (body:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)), times = 1 } }
        local c, t, ok, err = run(p)
        assert.is_nil(ok)
        assert.equal("failed", t.status)
        assert.equal("invalid", err.kind)
        assert.is_not_nil(utf8.len(err.message), "not valid UTF-8: " .. err.message)
        assert.is_not_nil(utf8.len(tostring(err)))
        assert.equal(0, stats(p).tasks)
        c:close()
      end)

      it("a status that never changes: task_timeout fires by name, the task stays in the journal", function()
        local c, t, ok, err, took = run(p, "#never", { task_timeout = 1 })
        assert.is_nil(ok)
        assert.equal("timeout", err.kind)
        assert.equal("task_timeout", err.code)
        assert.matches("may still finish at " .. p .. " and be billed", err.message)
        assert.is_true(t.halted)
        assert.is_true(took < 2.5, "the deadline fired late: " .. took)
        local j = journaled(p)
        assert.equal(t.id, j.id)
        assert.equal("claimed", j.state)                 -- its client still follows it ...
        c:close()
        assert.equal("open", journaled(p).state)         -- ... and then pixflow resume picks it up
        assert.equal(1, stats(p).tasks)
      end)

      it("success without a video URL is a failure", function()
        local c, t, ok, err = run(p, "#novideo")
        assert.is_nil(ok)
        assert.equal("failed", t.status)
        assert.equal("protocol", err.kind)
        assert.equal("no_video_url", err.code)
        assert.equal("failed", journaled(p).status)
        c:close()
      end)

      it("a status reply slower than request_timeout: named, polled again", function()
        sbx.faults{ { gateway = p, route = "status", action = "stall", seconds = 3, times = 1 } }
        local c, t, ok, err, took = run(p, nil, { timeouts = { request = 0.5, low_speed_time = 0 } })
        assert(ok, tostring(err))
        assert.is_true(took < 3, "waited for the stall: " .. took)
        assert.equal("request_timeout", t.last_retry.code)
        assert.matches("request_timeout %(0.5 s%)", t.last_retry.message)
        c:close()
      end)

      it("a download that stalls: download_timeout fires by name, the next attempt resumes", function()
        sbx.faults{ { gateway = p, route = "download", action = "stall", fraction = 0.5, seconds = 3, times = 1 } }
        local c, t, ok = run(p, nil, { timeouts = { download = 0.5, low_speed_time = 0 } })
        assert(ok)
        local out = dir .. "/stalled.mp4"
        assert(t:download(out, { timeout = 10 }))
        assert.equal(CLIP, util.read(out))
        assert.equal("download_timeout", t.last_retry.code)
        assert.equal(1, stats(p).resumed)
        c:close()
      end)

      it("a download cut at 60% resumes with a Range request, byte-identical", function()
        sbx.faults{ { gateway = p, route = "download", action = "cut", fraction = 0.6, times = 1 } }
        local st = succeeds(p)
        assert.equal(1, st.resumed)
        assert.equal(2, st.downloads)
      end)

      it("an expired download URL: a fresh one from the status, then the file", function()
        local c, t, ok, err = run(p, "#urlttl=0.3")
        assert(ok, tostring(err))
        socket.sleep(0.4)
        local out = dir .. "/expired.mp4"
        assert(t:download(out, { timeout = 10 }))
        assert.equal(CLIP, util.read(out))
        c:close()
      end)

      it("a result that is not an MP4: refused, nothing saved", function()
        local c, t, ok = run(p, "#notmp4")
        assert(ok)
        local out = dir .. "/not.mp4"
        local path, err = t:download(out, { timeout = 10 })
        assert.is_nil(path)
        assert.equal("not_mp4", err.code)
        assert.is_false(util.exists(out))
        assert.is_false(util.exists(out .. ".part"))
        c:close()
      end)

      it("a download redirected to file:// is refused", function()
        sbx.faults{ { gateway = p, route = "download", action = "redirect", location = "file:///etc/passwd" } }
        local c, t, ok = run(p, nil, { retry = { download_attempts = 1 } })
        assert(ok)
        local out = dir .. "/redirect.mp4"
        local path, err = t:download(out, { timeout = 10 })
        assert.is_nil(path)
        assert.equal("transport", err.kind)
        assert.is_false(util.exists(out))
        c:close()
      end)
    end)
  end

  -- A connect or DNS timeout is the same case: libcurl gave up before anything was sent.
  it("a connect timeout says nothing was charged, and never that the task may be billed", function()
    -- a listener whose accept queue is full: the kernel drops the SYN, the connect hangs
    local srv = assert(socket.bind("127.0.0.1", 0, 0))
    local _, port = srv:getsockname()
    local fill = {}
    for i = 1, 4 do
      fill[i] = socket.tcp()
      fill[i]:settimeout(0)
      fill[i]:connect("127.0.0.1", port)
    end
    local c, t, ok, err = run("apimart", nil, { base_url = ("http://127.0.0.1:%d/apimart"):format(port),
                                                timeouts = { connect = 0.2 }, retry = { base = 0.01, max = 0.02 } })
    assert.is_nil(ok)
    assert.equal("failed", t.status)
    assert.equal("connect_timeout", err.code)
    local text = tostring(err)
    assert.matches("nothing was charged", text)
    assert.is_nil(text:find("billed", 1, true), text)
    assert.is_nil(text:find("may still", 1, true), text)
    assert.is_false(err.charged)
    assert.equal("failed", journaled("apimart").status)
    -- the same for the submit itself (no upload first)
    local t2 = assert(c:submit{ prompt = "text only" })
    local ok2, err2 = t2:wait{ timeout = 10 }
    assert.is_nil(ok2)
    assert.equal("connect_timeout", err2.code)
    assert.matches("the request never reached apimart .*so nothing was charged", err2.message)
    assert.is_nil(tostring(err2):find("billed", 1, true), tostring(err2))
    assert.is_false(err2.charged)
    c:close()
    for _, s in ipairs(fill) do s:close() end
    srv:close()
  end)

  -- Submits share keep-alive connections with every other request. When a reused connection
  -- closes before the reply, libcurl would send the submit again on a new one by itself: that
  -- second send is stopped. A connection idle for more than a second is not reused for one.
  describe("a submit on a kept-alive connection", function()
    local function warm_client()
      local c = client("apimart")
      local a = assert(c:submit{ prompt = "warm", model = "v6" })
      assert(a:wait{ timeout = 5 })
      return c
    end

    it("that closes before the reply: sent once, unconfirmed, the cause named", function()
      local c = warm_client()
      sbx.faults{ { gateway = "apimart", route = "submit", action = "reset", times = 1 } }
      local t = assert(c:submit{ prompt = "second", model = "v6" })
      local ok, err = t:wait{ timeout = 5 }
      assert.is_nil(ok)
      assert.equal("unconfirmed", err.kind)
      assert.equal("GOT_NOTHING", err.code)
      assert.matches("libcurl's own resend of it was stopped", err.message, 1, true)
      assert.equal(2, stats("apimart").submits)     -- the warm-up's and this one's, once
      c:close()
    end)

    it("idle for over a second: not reused, so a close is the plain transport error", function()
      local c = warm_client()
      socket.sleep(2.1)
      sbx.faults{ { gateway = "apimart", route = "submit", action = "reset", times = 1 } }
      local t = assert(c:submit{ prompt = "second", model = "v6" })
      local ok, err = t:wait{ timeout = 5 }
      assert.is_nil(ok)
      assert.equal("unconfirmed", err.kind)
      assert.is_nil(err.message:find("resend of it was stopped", 1, true))
      assert.equal(2, stats("apimart").submits)
      c:close()
    end)
  end)
end)
