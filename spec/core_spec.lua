-- The engine: a pump that never blocks, lifetimes (what is collected, what is kept alive),
-- closing, and the virtual clock that drives the scheduler.
local pixflow = require "pixflow"
local core = require "pixflow.core"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"
local socket = require "socket"

local sbx

local function new_client(poll)
  return assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                             poll = poll or { initial = 0.05, interval = 0.1, jitter = 0 },
                             max_per_host = 64 })
end

local function pump_until(client, pred, timeout)
  local deadline = core.now() + (timeout or 10)
  while not pred() do
    assert(core.now() < deadline, "timed out")
    client:poll(0.05)
  end
end

describe("engine", function()
  setup(function() sbx = sandbox.start{ task_seconds = 0.3 } end)
  teardown(function() sbx.stop() end)
  before_each(function() sbx.reset() end)

  it("poll(0) returns at once with 100 tasks in flight", function()
    -- slow polls so the 100 tasks sit in the scheduler, in flight, while poll(0) is measured
    local client = new_client{ initial = 60, interval = 60, jitter = 0 }
    local tasks = {}
    for i = 1, 100 do tasks[i] = assert(client:submit{ prompt = "long #never " .. i }) end
    pump_until(client, function()
      for _, t in ipairs(tasks) do if t.status ~= "queued" then return false end end
      return true
    end)
    assert.equal(100, client:poll(0))
    local times = {}
    for i = 1, 1000 do
      local t0 = core.now()
      client:poll(0)
      times[i] = core.now() - t0
    end
    table.sort(times)
    -- not a benchmark (make bench has those): proof that poll(0) does not wait for anything
    assert.is_true(times[500] < 0.001, ("median poll(0) took %.6f s"):format(times[500]))
    assert.is_true(times[1000] < 0.05, ("slowest poll(0) took %.6f s"):format(times[1000]))
    assert.equal(100, sbx.stats().apimart.submits)
    client:close()
  end)

  it("max_per_host caps the requests on the wire; the rest wait their turn", function()
    local client = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                       max_per_host = 2, poll = { initial = 0.05, interval = 0.1 } })
    local tasks = {}
    for i = 1, 10 do tasks[i] = assert(client:submit{ prompt = "x" .. i }) end
    local running, queued = client._core:_transfers()
    assert.equal(2, running)        -- two hold the host's slots ...
    assert.equal(8, queued)         -- ... the rest wait for one
    assert.equal(0, sbx.stats().apimart.submits)   -- and nothing is sent before the pump
    local most = 0
    pump_until(client, function()
      client:poll(0)
      local r, q = client._core:_transfers()
      assert.is_true(r + q <= 10)
      if r > most then most = r end
      for _, t in ipairs(tasks) do if t.status == "submitting" then return false end end
      return true
    end)
    assert.is_true(most <= 2, "at most 2 at once, saw " .. most)
    assert.equal(10, sbx.stats().apimart.tasks)
    client:close()
  end)

  it("a request that a finished transfer lets start goes out in that same pump", function()
    -- one slot: the second submit waits for the first's reply. The pump that reads that reply
    -- must also send the second, not leave it to the next frame's pump, while its budget lasts.
    -- The budget here is generous: under AddressSanitizer on a slow machine reading the reply
    -- alone outlasts the default 0.3 ms, and then the next spec's rule applies.
    local client = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                       max_per_host = 1, poll = { initial = 30 }, budget = 1 })
    assert(client:submit{ prompt = "first" })
    assert(client:submit{ prompt = "second" })
    local _, _, finished = client._core:_transfers()
    local deadline = core.now() + 10
    repeat
      assert(core.now() < deadline, "timed out")
      client:poll(0.01)
      local _, _, f = client._core:_transfers()
    until f > finished
    local running, queued = client._core:_transfers()
    assert.equal(1, running)
    assert.equal(0, queued)
    -- no pump from here on: only what that pump sent can reach the sandbox
    deadline = core.now() + 2
    while sbx.stats().apimart.submits < 2 and core.now() < deadline do socket.sleep(0.05) end
    assert.equal(2, sbx.stats().apimart.submits)
    client:close()
  end)

  it("a request started after the pump's budget is spent goes out in the next pump", function()
    -- the same two submits with the smallest budget: the pump that reads the first reply starts
    -- the second but leaves sending it to the next pump
    local client = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                       max_per_host = 1, poll = { initial = 30 }, budget = 0.00001 })
    assert(client:submit{ prompt = "first" })
    assert(client:submit{ prompt = "second" })
    local _, _, finished = client._core:_transfers()
    local deadline = core.now() + 10
    repeat
      assert(core.now() < deadline, "timed out")
      client:poll(0.01)
      local _, _, f = client._core:_transfers()
    until f > finished
    local running, queued = client._core:_transfers()
    assert.equal(1, running)
    assert.equal(0, queued)
    socket.sleep(0.3)
    assert.equal(1, sbx.stats().apimart.submits)     -- not sent by the pump that started it
    client:poll(0)
    deadline = core.now() + 2
    while sbx.stats().apimart.submits < 2 and core.now() < deadline do socket.sleep(0.05) end
    assert.equal(2, sbx.stats().apimart.submits)     -- sent by the next one
    client:close()
  end)

  it("poll(timeout) waits no longer than its timeout when nothing happens", function()
    local client = new_client()
    local t0 = core.now()
    assert.equal(0, client:poll(0.2))
    local took = core.now() - t0
    assert.is_true(took >= 0.19 and took < 1, "took " .. took)
    client:close()
  end)

  it("a scheduled poll fires when the virtual clock reaches it", function()
    local client = new_client{ initial = 1000, interval = 1000, jitter = 0 }
    local task = assert(client:submit{ prompt = "x" })
    pump_until(client, function() return task.status == "queued" end)
    local due = client._core:_next_due()
    assert.is_true(due > 900 and due <= 1000, "next due in " .. tostring(due))
    client:poll(0.05)
    assert.equal(0, sbx.stats().apimart.polls)
    client._core:_advance_clock(1000)
    pump_until(client, function() return sbx.stats().apimart.polls == 1 end)
    client:close()
  end)

  describe("lifetimes", function()
    it("a task in flight is kept alive by its client", function()
      local client = new_client()
      local weak = setmetatable({}, { __mode = "v" })
      weak[1] = assert(client:submit{ prompt = "x" })
      util.gc()
      assert.is_not_nil(weak[1])
      assert.equal(1, client:inflight())
      -- it finishes without anyone holding it, and is then collectable
      pump_until(client, function() return client:inflight() == 0 end)
      util.gc()
      assert.is_nil(weak[1])
      client:close()
    end)

    it("a closed task is collected and closing twice is harmless", function()
      local client = new_client()
      local weak = setmetatable({}, { __mode = "v" })
      local t = assert(client:submit{ prompt = "x" })
      weak[1] = t
      t:close()
      t:close()
      assert.equal(0, client:inflight())
      assert.equal("closed", t.status)
      assert.has_error(function() t:wait() end, "attempt to use a closed task")
      t = nil
      util.gc()
      assert.is_nil(weak[1])
      client:close()
    end)

    it("a dropped client with tasks in flight is collected, with its tasks", function()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local client = new_client()
        weak.client = client
        for i = 1, 5 do weak[i] = assert(client:submit{ prompt = "x" .. i }) end
        client:poll(0.05)
      end
      util.gc()
      assert.is_nil(weak.client)
      for i = 1, 5 do assert.is_nil(weak[i]) end
    end)

    it("closing a client stops its tasks; they keep their last state", function()
      local client = new_client()
      local t = assert(client:submit{ prompt = "#never" })
      pump_until(client, function() return t.status ~= "submitting" end)
      client:close()
      client:close()
      assert.equal("queued", t.status)
      assert.has_error(function() client:poll(0) end, "attempt to use a closed client")
      assert.has_error(function() t:wait() end, "attempt to use a task whose client is closed")
    end)

    it("<close> variables close tasks and clients", function()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local client <close> = new_client()
        local t <close> = assert(client:submit{ prompt = "x" })
        weak[1], weak[2] = client, t
      end
      assert.equal("closed", weak[2].status)
      assert.equal(0, weak[1]:inflight())
    end)
  end)

  -- issue 12, section 5: defects found by reading the engine
  describe("the pump", function()
    it("poll(1e10) and poll(math.huge) sleep until a task changes, without spinning", function()
      local client = new_client()
      for _, timeout in ipairs{ 1e10, math.huge } do
        -- the submit's reply stalls for a second: nothing is due, the pump can only wait
        sbx.faults{ { gateway = "apimart", route = "submit", action = "stall", seconds = 1, fraction = 0.5, times = 1 } }
        local t = assert(client:submit{ prompt = "x" })
        local cpu0, wall0 = os.clock(), socket.gettime()
        client:poll(timeout)
        local cpu, wall = os.clock() - cpu0, socket.gettime() - wall0
        assert.equal("unconfirmed", t.status)       -- it returned because the task changed
        assert.is_true(wall >= 0.9, "returned early: " .. wall)
        -- a sleeping pump uses next to no CPU; the overflowing one spun for the whole second
        assert.is_true(cpu < 0.5 * wall, ("%.2f s of CPU in %.2f s"):format(cpu, wall))
      end
      assert.has_error(function() client:poll(0 / 0) end)
      assert.has_error(function() client._core:poll(0 / 0) end)
      client:close()
    end)

    it("a queued request that cannot start ends its task with the reason, and the host's queue goes on", function()
      local dir = util.tmpdir()
      local img = dir .. "/hero.png"
      assert(os.execute("cp spec/fixtures/images/hero.png " .. img))
      local client = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                         max_per_host = 1, task_timeout = 30,
                                         poll = { initial = 0.05, interval = 0.1, jitter = 0 } })
      -- the first submit holds the host's one slot for a second
      sbx.faults{ { gateway = "apimart", route = "submit", action = "stall", seconds = 1, fraction = 0.5, times = 1 } }
      assert(client:submit{ prompt = "first" })
      local b = assert(client:submit{ prompt = "@hero runs", references = { { name = "hero", image = img } } })
      -- b's file is hashed on the worker, then its upload waits for the slot
      local _, queued
      local until_t = os.time() + 5
      repeat
        client:poll(0.01)
        _, queued = client._core:_transfers()
      until queued == 1 or os.time() > until_t
      assert.equal(1, queued)
      local c = assert(client:submit{ prompt = "third" })   -- and waits behind it
      os.remove(img)                                -- gone before its turn comes
      local ok, err = b:wait{ timeout = 5 }
      assert.is_nil(ok, "b is " .. b.status)
      assert.equal("failed", b.status)
      assert.equal("io", err.kind)
      assert.matches("cannot read .*hero%.png", err.message)
      assert.matches("nothing was charged", err.message)
      assert(c:wait{ timeout = 5 })                 -- the queue was not blocked behind b
      assert.equal(0, sbx.stats().apimart.uploads)
      local running, waiting = client._core:_transfers()
      assert.equal(0, running)
      assert.equal(0, waiting)
      client:close()
      os.execute("rm -rf " .. dir)
    end)

    it("queued requests go before new ones: a free slot is not taken ahead of the queue", function()
      local client = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                         max_per_host = 1, poll = { initial = 30 } })
      local a = assert(client:submit{ prompt = "a" })      -- on the wire
      local b = assert(client:submit{ prompt = "b" })      -- waits for the slot
      a:close()                                            -- frees it outside the pump
      local c = assert(client:submit{ prompt = "c" })
      local running, queued = client._core:_transfers()
      assert.equal(0, running)                             -- the slot waits for the queue ...
      assert.equal(2, queued)
      pump_until(client, function() return b.status ~= "submitting" end)
      assert.equal("queued", b.status)                     -- ... which the pump serves in order
      assert.equal("submitting", c.status)
      pump_until(client, function() return c.status ~= "submitting" end)
      client:close()
    end)
  end)

  describe("uploads", function()
    -- FNV-1a 64 of s, as the sandbox's stats give it (upload_sum)
    local function fnv1a(s)
      local h = -3750763034362895579          -- 14695981039346656037 as a signed 64-bit integer
      for i = 1, #s do h = (h ~ s:byte(i)) * 1099511628211 end
      return ("%016x"):format(h)
    end
    local function image(dir, name, bytes)
      local path = dir .. "/" .. name
      local f = assert(io.open(path, "wb"))
      math.randomseed(bytes)
      local t = {}
      for i = 1, bytes // 8 do t[i] = string.pack("<i8", math.random(math.mininteger, math.maxinteger)) end
      local data = "\137PNG\r\n\26\n" .. ("\0"):rep(24) .. table.concat(t)
      f:write(data)
      f:close()
      return path, data
    end

    it("a file of many chunks is read on the worker and arrives whole, byte for byte", function()
      -- 3 MiB: 24 chunks of 128 KiB, six times what is read ahead, so the transfer waits for
      -- the worker again and again (the read callback pauses it) and goes on each time
      local dir = util.tmpdir()
      local path, data = image(dir, "big.png", 3 * 1024 * 1024)
      local client = new_client()
      local t = assert(client:submit{ prompt = "@hero runs", references = { { name = "hero", image = path } } })
      assert(t:wait{ timeout = 20 })
      local st = sbx.stats().apimart
      assert.equal(1, st.uploads)
      assert.equal(fnv1a(data), st.upload_sum)
      client:close()
      os.execute("rm -rf " .. dir)
    end)

    it("an upload libcurl sends again (its connection died under it) is read again from the start", function()
      -- the second upload goes out on the first one's connection, which the sandbox then closes
      -- without a reply: libcurl rewinds the body (seek_part) and sends it whole on a new one,
      -- with no retry of pixflow's own
      sbx.faults{ { gateway = "apimart", route = "upload", action = "reset", skip = 1, times = 1 } }
      local dir = util.tmpdir()
      local hero = image(dir, "hero.png", 4096)
      local city, data = image(dir, "city.png", 200 * 1024)
      local client = new_client()
      local t = assert(client:submit{ prompt = "@hero runs through @city",
                                      references = { { name = "hero", image = hero },
                                                     { name = "city", image = city, type = "background" } } })
      assert(t:wait{ timeout = 20 })
      local st = sbx.stats().apimart
      assert.equal(1, st.faults)
      assert.equal(2, st.uploads)
      assert.equal(fnv1a(data), st.upload_sum)
      assert.is_nil(t.last_retry, "pixflow retried: " .. tostring(t.last_retry and t.last_retry.message))
      client:close()
      os.execute("rm -rf " .. dir)
    end)

    it("a file that changes after its submit read it fails its task, naming it, and nothing is charged", function()
      -- the content key (the upload cache's) was made from the bytes the submit's hash read: a
      -- file that grew since would upload other bytes than the ones the key stands for
      local dir = util.tmpdir()
      local path = image(dir, "hero.png", 4096)
      local client = new_client()
      local t = assert(client:submit{ prompt = "@hero runs", references = { { name = "hero", image = path } } })
      socket.sleep(0.5)                             -- hashed on the worker meanwhile
      local f = assert(io.open(path, "ab"))
      f:write("more")
      f:close()
      local ok, err = t:wait{ timeout = 10 }
      assert.is_nil(ok)
      assert.equal("failed", t.status)
      assert.equal("io", err.kind)
      assert.equal("changed", err.code)
      assert.matches("hero%.png changed while it was being uploaded %(4128 bytes when it was read "
                     .. "for its content key, 4132 now%)", err.message)
      assert.matches("nothing was charged", err.message)
      assert.matches("submit again once the file is completely written", tostring(err))
      local st = sbx.stats().apimart
      assert.equal(0, st.uploads)
      assert.equal(0, st.submits)
      client:close()
      os.execute("rm -rf " .. dir)
    end)
  end)

  describe("memory", function()
    local function rss()
      local f = assert(io.open("/proc/self/statm"))
      local _, resident = f:read("n", "n")
      f:close()
      return resident * 4096
    end

    it("a submit that raises for a bad argument has copied nothing (no leak)", function()
      local client = new_client()
      local req = { mode = "text", model = "v6", prompt = ("x"):rep(4 * 1024 * 1024) }
      util.gc()
      local before = rss()
      for _ = 1, 50 do
        assert.has_error(function() client._core:submit(req, client, false, "soon") end)
      end
      util.gc()
      local grew = rss() - before
      -- each leaked copy of the prompt is 4 MB: 200 MB in all
      assert.is_true(grew < 40 * 1024 * 1024, ("resident memory grew by %d MB"):format(grew // 2^20))
      assert.equal(0, client:inflight())
      client:close()
    end)

    it("a pump that runs out of Lua memory loses no change and keeps its anchors right", function()
      local client = assert(pixflow.new{ provider = "apimart", api_key = "invalid", base_url = sbx.base("apimart") })
      local seen = {}
      client:on_change(function(t) seen[t] = (seen[t] or 0) + 1 end)
      local t = assert(client:submit{ prompt = "x" })
      local deadline = core.now() + 10
      while t.status == "submitting" do
        assert(core.now() < deadline, "timed out")
        -- every Lua allocation is refused inside: the pump may fail, but must not tear anything
        client._core:_poll_without_memory(0.05)
      end
      assert.equal("failed", t.status)                -- the 401 was handled
      client:poll(0)                                  -- memory again: the change is handed over
      assert.equal(1, seen[t], "the change was lost")
      assert.equal(0, client:inflight())              -- and the finished task is unanchored
      local weak = setmetatable({ t }, { __mode = "v" })
      t = nil
      seen = nil
      util.gc()
      assert.is_nil(weak[1])
      client:close()
    end)
  end)

  describe("one transfer per task", function()
    local CLIP = util.read("spec/fixtures/clip.mp4")

    it("stopping a download that waits for a fresh URL also stops that status read", function()
      local dir = util.tmpdir()
      local client = new_client()
      local t = assert(client:submit{ prompt = "x #urlttl=0.3" })
      assert(t:wait{ timeout = 10 })
      socket.sleep(0.4)                               -- the result URL expired
      local polls = sbx.stats().apimart.polls
      sbx.faults{ { gateway = "apimart", route = "status", action = "stall", seconds = 2, fraction = 0.5, times = 1 } }
      assert(t:start_download(dir .. "/a.mp4"))
      -- the download gets 403, and the status read for a fresh URL is on the wire (stalled)
      pump_until(client, function() return sbx.stats().apimart.polls > polls end)
      t:_download_abort()
      local state = t:download_state()
      local running, queued = client._core:_transfers()
      -- a new download starts its own refresh, and nothing of the first overwrites it (before
      -- the fix, this overwrote the running status read: valgrind saw its easy handle lost)
      local path, err = t:download(dir .. "/b.mp4", { timeout = 10 })
      assert.equal("failed", state)
      assert.equal(0, running, "the status read still ran after the abort")
      assert.equal(0, queued)
      assert.equal(dir .. "/b.mp4", path, tostring(err))
      assert.equal(CLIP, util.read(dir .. "/b.mp4"))
      client:poll(0.05)
      running, queued = client._core:_transfers()
      assert.equal(0, running)
      assert.equal(0, queued)
      assert.is_false(util.exists(dir .. "/a.mp4.part"))
      client:close()
      os.execute("rm -rf " .. dir)
    end)

    it("a status that flips from succeeded back to running ends the download that waited for a fresh URL", function()
      local dir = util.tmpdir()
      local client = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                         poll = { initial = 0.05, interval = 0.1, jitter = 0 }, task_timeout = 600 })
      local t = assert(client:submit{ prompt = "x #urlttl=0.3" })
      assert(t:wait{ timeout = 10 })
      socket.sleep(0.4)
      sbx.faults{ { gateway = "apimart", route = "status", action = "reply", status = 200,
                    body = '{"code":200,"data":{"id":"' .. t.id .. '","status":"processing","progress":50}}' } }
      local path, err = t:download(dir .. "/out.mp4", { timeout = 3 })
      assert.is_nil(path)
      assert.equal("result_unavailable", err.code, tostring(err))
      assert.matches("says the task is running", err.message)
      assert.equal("failed", (t:download_state()))
      assert.equal("running", t.status)               -- what the gateway says now
      assert.is_false(util.exists(dir .. "/out.mp4"))
      assert.is_false(util.exists(dir .. "/out.mp4.part"))
      client:close()
      os.execute("rm -rf " .. dir)
    end)

    -- The bytes are written on the worker (a chunk at a time): a write that fails there ends the
    -- download with the error, whether it is seen at the last chunk or in the middle.
    for _, case in ipairs{ { "a one-chunk result", "" }, { "a 3 MiB result", " #size=3145728" } } do
      it("a download onto a full disk (" .. case[1] .. ") fails with the write error and keeps nothing", function()
        local dir = util.tmpdir()
        local client = new_client()
        local t = assert(client:submit{ prompt = "x" .. case[2] })
        assert(t:wait{ timeout = 10 })
        -- the .part is /dev/full: every write fails with ENOSPC, as on a full disk
        assert(os.execute(("ln -s /dev/full %s/out.mp4.part"):format(dir)))
        local path, err = t:download(dir .. "/out.mp4", { timeout = 10 })
        assert.is_nil(path)
        assert.equal("write", err.code, tostring(err))
        assert.matches("No space left on device", err.message, 1, true)
        assert.matches("out.mp4.part", err.message, 1, true)
        assert.equal("failed", (t:download_state()))
        assert.is_false(util.exists(dir .. "/out.mp4"))
        assert.is_false(util.exists(dir .. "/out.mp4.part"))
        local running, queued = client._core:_transfers()
        assert.equal(0, running + queued)
        client:close()
        os.execute("rm -rf " .. dir)
      end)
    end

    it("task:close() during a download removes its .part", function()
      local dir = util.tmpdir()
      local client = new_client()
      local t = assert(client:submit{ prompt = "x" })
      assert(t:wait{ timeout = 10 })
      sbx.faults{ { gateway = "apimart", route = "download", action = "stall", fraction = 0.5, seconds = 3, times = 1 } }
      assert(t:start_download(dir .. "/out.mp4"))
      pump_until(client, function() return t.bytes > 0 end)
      assert.is_true(util.exists(dir .. "/out.mp4.part"))
      t:close()                                     -- returns at once: the worker removes it
      local until_t = os.time() + 5
      while util.exists(dir .. "/out.mp4.part") and os.time() <= until_t do os.execute("sleep 0.01") end
      assert.is_false(util.exists(dir .. "/out.mp4.part"))
      assert.is_false(util.exists(dir .. "/out.mp4"))
      client:close()
      os.execute("rm -rf " .. dir)
    end)
  end)

  it("tostring names the task and its state", function()
    local client = new_client()
    local t = assert(client:submit{ prompt = "x" })
    assert.matches("^pixflow%.Task %(apimart %-%) %[submitting%]$", tostring(t))
    assert(t:wait{ timeout = 10 })
    assert.matches("^pixflow%.Task %(apimart task_01%w+%) %[succeeded%]$", tostring(t))
    assert.matches("^pixflow%.Client %(apimart http://127%.0%.0%.1:%d+/apimart%)", tostring(client))
    client:close()
  end)

  it("pixflow.error values print one readable line and compare by kind", function()
    local e = pixflow.new_error("quota", "insufficient quota", { provider = "apimart", status = 403 })
    assert.is_true(pixflow.is_error(e))
    assert.is_false(pixflow.is_error({ kind = "quota" }))
    assert.equal("[quota] apimart: insufficient quota (HTTP 403). What to do: the account balance or "
      .. "quota is used up: top it up at the gateway, then submit again", tostring(e))
  end)

  it("_VERSION is the core's", function()
    assert.equal(core._VERSION, pixflow._VERSION)
    assert.matches("^%d+%.%d+%.%d+$", pixflow._VERSION)
  end)
end)
