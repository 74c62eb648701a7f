-- Every gateway end to end against the sandbox: a fusion request with local reference images
-- to an MP4 on disk, each documented mode, uploads cached by content, cancel, the uploader hook
-- for gateways without uploads, and each gateway's errors. /_sandbox/stats proves what was sent.
local pixflow = require "pixflow"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local sbx, dir
local IMG = "spec/fixtures/images/"
local PRESETS = { "pixverse", "quickrouter", "apimart", "dashscope", "jiekou", "baicai" }

local function client(provider, extra)
  local opts = { provider = provider, api_key = "sk-" .. provider .. "-SECRET", base_url = sbx.base(provider),
                 poll = { initial = 0.05, interval = 0.1, max = 0.3, jitter = 0 } }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(pixflow.new(opts))
end

local function local_refs()
  return { { name = "hero", image = IMG .. "hero.png" },
           { name = "city", image = IMG .. "city.jpg", type = "background" } }
end

local function is_mp4(path)
  local d = util.read(path)
  return d ~= nil and d:sub(5, 8) == "ftyp"
end

-- jiekou has no upload: its user supplies an uploader (here: a fake CDN URL per file)
local function fake_uploader(path) return "https://cdn.example.com/" .. path:match("[^/]+$") end

describe("every gateway", function()
  sandbox.around({ task_seconds = 0.4, reset = true }, function(s, d) sbx, dir = s, d end)

  for _, p in ipairs(PRESETS) do
    it(p .. ": fusion with local reference images, to an MP4 on disk", function()
      local c = client(p, p == "jiekou" and { uploader = fake_uploader } or nil)
      local task = assert(c:submit{ prompt = "@hero runs through @city", references = local_refs(), duration = 5 })
      assert(task:wait{ timeout = 15 })
      local out = dir .. "/" .. p .. ".mp4"
      assert(task:download(out))
      assert.is_true(is_mp4(out))
      local st = sbx.stats()[p]
      assert.equal(1, st.submits)
      assert.equal(1, st.tasks)
      assert.equal(1, st.downloads)
      assert.equal(p == "jiekou" and 0 or 2, st.uploads)
      assert.equal(0, st.errors)       -- nothing refused, and no early (status 5) URL fetched
      c:close()
    end)

    it(p .. ": the same images again are not uploaded twice", function()
      if p == "jiekou" then return end
      local c = client(p)
      for _ = 1, 2 do
        local task = assert(c:submit{ prompt = "@hero runs through @city", references = local_refs() })
        assert(task:wait{ timeout = 15 })
      end
      assert.equal(2, sbx.stats()[p].uploads)
      assert.equal(2, sbx.stats()[p].tasks)
      local uploads, cached = c._core:_uploads()
      assert.equal(2, uploads)
      assert.equal(2, cached)
      c:close()
    end)

    for key, kind in pairs({ invalid = "auth", noquota = "quota", ratelimit = "rate_limit" }) do
      it(("%s: key %q gives %s before any task is created"):format(p, key, kind), function()
        local c = assert(pixflow.new{ provider = p, api_key = key, base_url = sbx.base(p),
                                      poll = { initial = 0.05, interval = 0.1 } })
        local task = assert(c:submit{ prompt = "@hero x", references = {
          { name = "hero", image = "https://e.com/h.png" } } })
        local ok, err = task:wait{ timeout = 10 }
        assert.is_nil(ok)
        assert.equal(kind, err.kind, tostring(err))
        assert.equal("failed", task.status)
        assert.equal(0, sbx.stats()[p].tasks)
        c:close()
      end)
    end

    it(p .. ": a moderated generation is reported as moderated", function()
      local c = client(p)
      local task = assert(c:submit{ prompt = "@hero #moderate", references = {
        { name = "hero", image = "https://e.com/h.png" } } })
      local ok, err = task:wait{ timeout = 10 }
      assert.is_nil(ok)
      assert.equal("moderated", err.kind, tostring(err))
      c:close()
    end)
  end

  describe("PixVerse", function()
    it("every documented mode, with uploaded images and an extension of a finished video", function()
      local c = client("pixverse", { model = "v5" })
      local text = assert(c:submit{ prompt = "a corgi runs", aspect_ratio = "9:16" })
      local image = assert(c:submit{ prompt = "zoom in", image = IMG .. "hero.png", duration = 8 })
      local trans = assert(c:submit{ prompt = "morph", first_frame = IMG .. "hero.png", last_frame = IMG .. "cat.webp" })
      for _, t in ipairs({ text, image, trans }) do assert(t:wait{ timeout = 15 }) end
      local ext = assert(c:submit{ prompt = "and on", extend_from = text })
      assert(ext:wait{ timeout = 15 })
      assert.equal(4, sbx.stats().pixverse.tasks)
      assert.equal(2, sbx.stats().pixverse.uploads)     -- hero.png once, cat.webp once
      assert.matches("^%d+$", ext.id)
      c:close()
    end)

    it("ids beyond 2^53 round-trip exactly (img_id 629000000000000001 is accepted back)", function()
      local c = client("pixverse")
      local task = assert(c:submit{ prompt = "@hero x", references = { { name = "hero", image = IMG .. "hero.png" } } })
      assert(task:wait{ timeout = 15 })
      assert.is_true(tonumber(task.id) > 2 ^ 53)
      assert.equal(task.id, c:task(task.id).id)
      c:close()
    end)

    it("QuickRouter documents fusion only: other modes are refused before sending", function()
      local c = client("quickrouter")
      local t, err = c:submit{ prompt = "a corgi runs" }
      assert.is_nil(t)
      assert.matches('mode: "text" is not supported by quickrouter v5.6 %(allowed: fusion%)', tostring(err))
      assert.equal(0, sbx.stats().quickrouter.submits)
      c:close()
    end)
  end)

  describe("DashScope", function()
    it("cancels a queued task; the task ends canceled", function()
      local c = client("dashscope")
      local task = assert(c:submit{ prompt = "@hero x #seconds=8", references = { { name = "hero", image = "https://e.com/h.png" } } })
      assert(task:cancel{ timeout = 10 })
      local ok, err = task:wait{ timeout = 10 }
      assert.is_nil(ok)
      assert.equal("canceled", task.status)
      assert.equal("canceled", err.kind)
      c:close()
    end)

    it("refuses to cancel a running task, and says why", function()
      local c = client("dashscope")
      local task = assert(c:submit{ prompt = "@hero x #seconds=2", references = { { name = "hero", image = "https://e.com/h.png" } } })
      while task.status ~= "running" do c:poll(0.05) end
      local ok, err = task:cancel{ timeout = 10 }
      assert.is_nil(ok)
      assert.equal("UnsupportedOperation", err.code)
      assert(task:wait{ timeout = 10 })
      c:close()
    end)

    it("cancel is refused locally where a gateway has none", function()
      local c = client("apimart")
      local task = assert(c:submit{ prompt = "x" })
      local ok, err = task:cancel()
      assert.is_nil(ok)
      assert.equal("unsupported", err.code)
      assert.matches("apimart has no cancel call", err.message)
      c:close()
    end)

    it("works with ref_name switched off (@names by position)", function()
      local c = client("dashscope", { ref_names = false, model = "v5.6" })
      local task = assert(c:submit{ prompt = "@hero runs through @city", references = local_refs(),
                                    resolution = "1080p", duration = 8 })
      assert(task:wait{ timeout = 15 })
      c:close()
    end)

    it("an unknown task id (UNKNOWN) halts with not_found", function()
      local c = client("dashscope")
      local ok, err = c:task("0385dc79-0000-0000-0000-000000000000"):wait{ timeout = 10 }
      assert.is_nil(ok)
      assert.equal("not_found", err.kind)
      c:close()
    end)

    it("regional endpoints: a workspace host, and a region that needs a workspace", function()
      local c = assert(pixflow.new{ provider = "dashscope", api_key = "k", region = "singapore", workspace = "ws-123" })
      assert.equal("https://ws-123.ap-southeast-1.maas.aliyuncs.com", c.base_url)
      c:close()
      assert.has_error(function() pixflow.new{ provider = "dashscope", api_key = "k", region = "singapore" } end,
        "bad argument #1 to 'new' (region 'singapore' needs a workspace (its endpoint is per workspace))")
      assert.has_error(function() pixflow.new{ provider = "dashscope", api_key = "k", region = "mars" } end,
        "bad argument #1 to 'new' (dashscope has no region 'mars'; known: beijing, singapore)")
    end)
  end)

  describe("jiekou", function()
    it("a local file without an uploader is refused before sending, naming the field", function()
      local c = client("jiekou")
      local t, err = c:submit{ prompt = "@hero x", references = { { name = "hero", image = IMG .. "hero.png" } } }
      assert.is_nil(t)
      assert.equal("references[1].image", err.problems[1].field)
      assert.matches("jiekou has no upload call for local files", tostring(err))
      assert.equal(0, sbx.stats().jiekou.submits)
      c:close()
    end)

    it("an uploader that fails gives an io error, and nothing is sent", function()
      local c = client("jiekou", { uploader = function() return nil, "bucket is full" end })
      local t, err = c:submit{ prompt = "@hero x", references = { { name = "hero", image = IMG .. "hero.png" } } }
      assert.is_nil(t)
      assert.equal("io", err.kind)
      assert.matches("bucket is full", err.message)
      assert.equal(0, sbx.stats().jiekou.submits)
      c:close()
    end)
  end)

  describe("baicai", function()
    it("several images per reference (local), several videos per task", function()
      local c = client("baicai")
      local task = assert(c:submit{ prompt = "@hero walks", count = 2, expand_prompt = true,
        references = { { name = "hero", images = { IMG .. "hero.png", IMG .. "city.jpg", IMG .. "cat.webp" } } } })
      assert(task:wait{ timeout = 15 })
      assert.equal(2, #task.videos)
      assert.equal(3, sbx.stats().baicai.uploads)
      assert(task:download(dir .. "/baicai2.mp4"))
      c:close()
    end)
  end)

  describe("the issue's validation examples fail before any request", function()
    local cases = {
      { "baicai", { prompt = "@a x", duration = 15, references = { { name = "a", image = "https://e.com/a.png" } } },
        "duration", "15 is not allowed (baicai v4.5 allows 5, 8 seconds)" },
      { "jiekou", { model = "v6", prompt = "@a x", references = { { name = "a", image = "https://e.com/a.png" } } },
        "model", '"v6" is not served by jiekou (allowed: c1)' },
      { "baicai", { prompt = "@a x", aspect_ratio = "16:9", references = { { name = "a", image = "https://e.com/a.png" } } },
        "aspect_ratio", "baicai v4.5 ignores aspect_ratio" },
      { "baicai", { prompt = "@a x", duration = 8, resolution = "1080p", references = { { name = "a", image = "https://e.com/a.png" } } },
        "duration", "8 is not allowed at 1080p (baicai v4.5 allows at most 5 seconds there)" },
      { "pixverse", { model = "v4.5", prompt = "x", audio = true }, "audio", "pixverse v4.5 cannot generate audio" },
      { "jiekou", { prompt = "@a x", seed = 7, references = { { name = "a", image = "https://e.com/a.png" } } },
        "seed", "jiekou c1 takes no seed" },
    }
    for _, c in ipairs(cases) do
      it(("%s: %s"):format(c[1], c[3]), function()
        local cl = client(c[1])
        local t, err = cl:submit(c[2])
        assert.is_nil(t)
        local found
        for _, pr in ipairs(err.problems) do
          if pr.field == c[3] and pr.message:find(c[4], 1, true) then found = true end
        end
        assert.is_true(found, tostring(err))
        assert.equal(0, sbx.stats()[c[1]].submits)
        cl:close()
      end)
    end

    it("dashscope: 4 references with two images each names every one", function()
      local c = client("dashscope")
      local refs = {}
      for i = 1, 4 do refs[i] = { name = "r" .. i, images = { "https://e.com/" .. i .. "a.png", "https://e.com/" .. i .. "b.png" } } end
      local t, err = c:submit{ prompt = "@r1 x", references = refs }
      assert.is_nil(t)
      assert.equal(4, #err.problems)
      for i = 1, 4 do
        assert.equal(("references[%d].images"):format(i), err.problems[i].field)
        assert.matches("2 images is too many %(dashscope c1 takes 1 per reference%)", err.problems[i].message)
      end
      assert.equal(0, sbx.stats().dashscope.submits)
      c:close()
    end)
  end)
end)
