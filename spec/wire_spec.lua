-- Issue 12 section 6 (and the 64-bit id point of section 4), end to end against the sandbox: the
-- reply shapes independent clients show (providers.md section 10), costs with their units, and
-- PixVerse's own rule for reference names. Each gateway's emulation sends the other shapes when
-- a prompt asks with #reply=NAME (docs/sandbox.md); /_sandbox/stats proves what was sent.
local pixflow = require "pixflow"
local cjson = require "cjson"
local http = require "socket.http"
local ltn12 = require "ltn12"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local sbx, dir
local IMG = "spec/fixtures/images/"
local REF = { { name = "hero", image = "https://e.com/h.png" } }

local function client(provider, extra)
  local opts = { provider = provider, api_key = "sk-" .. provider .. "-SECRET", base_url = sbx.base(provider),
                 poll = { initial = 0.05, interval = 0.1, max = 0.3, jitter = 0 } }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(pixflow.new(opts))
end

local function is_mp4(path)
  local d = util.read(path)
  return d ~= nil and d:sub(5, 8) == "ftyp"
end

-- A raw request to the sandbox, with the headers given (the emulation's own checks).
local function raw(method, url, headers, body)
  local out = {}
  headers = headers or {}
  if body then headers["content-length"] = tostring(#body) end
  local _, code = http.request{ url = url, method = method, headers = headers, sink = ltn12.sink.table(out),
                                source = body and ltn12.source.string(body) or nil }
  local text = table.concat(out)
  local ok, obj = pcall(cjson.decode, text)
  return code, ok and obj or text
end

describe("wire corrections (issue 12, section 6)", function()
  sandbox.around({ task_seconds = 0.4, reset = true }, function(s, d) sbx, dir = s, d end)

  describe("costs carry their unit", function()
    it("apimart: cost (USD) is task.cost; cost and credits_cost are both in task.costs", function()
      local c = client("apimart")
      local task = assert(c:submit{ prompt = "@hero runs", references = REF })
      assert(task:wait{ timeout = 10 })
      assert.same({ amount = 0.2, unit = "USD" }, task.cost)
      assert.same({ { amount = 0.2, unit = "USD" }, { amount = 2, unit = "credits" } }, task.costs)
      assert.equal("0.2 USD", tostring(task.cost))
      c:close()
    end)

    it("PixVerse: the submit's credits are the cost before any poll, and the result's after", function()
      local c = client("pixverse", { model = "v5.6", poll = { initial = 5, interval = 5 } })
      local task = assert(c:submit{ prompt = "@hero runs #seconds=30", references = REF, resolution = "1080p",
                                    duration = 8 })
      while not task.id do c:poll(0.05) end
      assert.equal(0, sbx.stats().pixverse.polls)
      assert.same({ amount = 192, unit = "credits" }, task.cost)     -- 120 per 5 s at 1080p, 8 s
      assert.same({ { amount = 192, unit = "credits" } }, task.costs)
      task:close()
      c:close()
      c = client("pixverse")
      local t2 = assert(c:submit{ prompt = "@hero #moderate", references = REF })
      t2:wait{ timeout = 10 }
      assert.equal("moderated", t2.status)
      assert.same({ amount = 0, unit = "credits" }, t2.cost)          -- status 7: refunded
      c:close()
    end)

    it("QuickRouter passes PixVerse's credits through", function()
      local c = client("quickrouter")
      local task = assert(c:submit{ prompt = "@hero runs", references = REF })
      assert(task:wait{ timeout = 10 })
      assert.same({ amount = 45, unit = "credits" }, task.cost)
      c:close()
    end)

    it("pixflow generate --json: the done event has the cost with its unit, and every cost", function()
      local env = ("APIMART_API_KEY=k XDG_STATE_HOME=%s/state HOME=%s"):format(dir, dir)
      local status, out = util.run(("%s bin/pixflow generate --sandbox %s --json --prompt '@hero walks' "
        .. "--ref hero=%shero.png -o %s/c.mp4"):format(env, sbx.url, IMG, dir))
      assert.equal(0, status, out)
      local last
      for line in out:gmatch("[^\n]+") do last = cjson.decode(line) end
      assert.equal("done", last.event)
      assert.same({ amount = 0.2, unit = "USD" }, last.cost)
      assert.same({ { amount = 0.2, unit = "USD" }, { amount = 2, unit = "credits" } }, last.costs)
    end)

    it("examples/fusion.lua prints the cost with its unit", function()
      local status, out = util.run(("XDG_STATE_HOME=%s/state HOME=%s PIXFLOW_BASE_URL=%s APIMART_API_KEY=k "
        .. "PIXFLOW_POLL=0.1 LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' "
        .. "lua5.4 examples/fusion.lua %s/f.mp4"):format(dir, dir, sbx.base("apimart"), dir))
      assert.equal(0, status, out)
      assert.matches("wrote " .. dir .. "/f.mp4 %(apimart, task task_%w+, cost 0.2 USD%)", out)
    end)
  end)

  describe("PixVerse", function()
    it("statuses 2 and 3 read as queued and running (#reply=staged)", function()
      local c = client("pixverse")
      local task = assert(c:submit{ prompt = "@hero runs #reply=staged #seconds=10", references = REF })
      while sbx.stats().pixverse.polls < 2 do c:poll(0.05) end
      assert.equal("queued", task.status)               -- the sandbox answered 2 (its first 1.5 s)
      local seen = {}
      assert(task:wait{ timeout = 15, on_progress = function(t) seen[t.status] = true end })
      assert.is_true(seen.running)                      -- 3
      assert.equal("succeeded", task.status)
      assert.equal(0, sbx.stats().pixverse.errors)
      c:close()
    end)

    for _, p in ipairs({ "pixverse", "quickrouter" }) do
      it(p .. ": a ref_name outside the vendor's rule is refused before anything is sent", function()
        local c = client(p)
        for name, why in pairs({ ["my-cat"] = '"-" is not allowed', ["chat_ä"] = '"ä" is not allowed',
                                 [("n"):rep(31)] = "31 characters is too long" }) do
          local t, err = c:submit{ prompt = "@" .. name .. " runs", references = {
            { name = name, image = IMG .. "hero.png" } } }
          assert.is_nil(t)
          assert.equal("invalid", err.kind)
          assert.equal("references[1].name", err.problems[1].field)
          assert.equal(1, #err.problems)
          assert.matches(why .. " (allowed: ASCII letters, digits and '_', 1 to 30 of them)", err.problems[1].message, 1, true)
        end
        local t = assert(c:submit{ prompt = "@A_b9 runs", references = { { name = "A_b9", image = IMG .. "hero.png" } } })
        assert(t:wait{ timeout = 10 })
        local st = sbx.stats()[p]
        assert.equal(1, st.submits)
        assert.equal(1, st.uploads)
        c:close()
      end)
    end

    it("the sandbox itself refuses a ref_name outside [a-zA-Z0-9_ ]{1,30} (400017)", function()
      local body = cjson.encode{ model = "v5", prompt = "@my-cat x", duration = 5, quality = "540p", aspect_ratio = "16:9",
        image_references = { { type = "subject", img_id = 1, ref_name = "my-cat" } } }
      local code, reply = raw("POST", sbx.base("pixverse") .. "/openapi/v2/video/fusion/generate",
        { ["API-KEY"] = "k", ["Ai-trace-id"] = "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
          ["content-type"] = "application/json" }, body)
      assert.equal(200, code)
      assert.equal(400017, reply.ErrCode)
      assert.matches("ref_name", reply.ErrMsg)
      assert.equal(0, sbx.stats().pixverse.tasks)
    end)
  end)

  describe("an id beyond 64 bits is reported as such (section 4)", function()
    it("a submit reply with one: unconfirmed, saying why, never sent again", function()
      sbx.faults{ { gateway = "pixverse", route = "submit", action = "reply_after", status = 200,
                    body = util.read("spec/fixtures/pixverse/submit_big_id.json") } }
      local c = client("pixverse")
      local task = assert(c:submit{ prompt = "@hero x", references = REF })
      local ok, err = task:wait{ timeout = 10 }
      assert.is_nil(ok)
      assert.equal("unconfirmed", task.status)
      assert.matches("holds the integer 18446744073709551616, beyond 64 bits", err.message, 1, true)
      assert.not_matches("not JSON", err.message, 1, true)
      assert.equal(1, sbx.stats().pixverse.submits)
      c:close()
    end)

    it("an upload reply with one: the task fails before its submit", function()
      sbx.faults{ { gateway = "pixverse", route = "upload", action = "reply", status = 200,
                    body = '{"ErrCode":0,"ErrMsg":"success","Resp":{"img_id":629000000000000000001,"img_url":"u"}}' } }
      local c = client("pixverse")
      local task = assert(c:submit{ prompt = "@hero x", references = { { name = "hero", image = IMG .. "hero.png" } } })
      local ok, err = task:wait{ timeout = 10 }
      assert.is_nil(ok)
      assert.equal("failed", task.status)
      assert.matches("629000000000000000001, beyond 64 bits", err.message, 1, true)
      assert.equal(0, sbx.stats().pixverse.submits)
      c:close()
    end)
  end)

  describe("QuickRouter: an OpenAI-style video object (#reply=openai) [INFERENCE]", function()
    it("submit, poll and download through the relay's own id", function()
      local c = client("quickrouter")
      local task = assert(c:submit{ prompt = "@hero runs #reply=openai", references = REF })
      assert(task:wait{ timeout = 10 })
      assert.matches("^video_%d+$", task.id)
      assert(task:download(dir .. "/qr.mp4"))
      assert.is_true(is_mp4(dir .. "/qr.mp4"))
      local st = sbx.stats().quickrouter
      assert.equal(1, st.tasks)
      assert.equal(1, st.downloads)
      assert.equal(0, st.errors)
      c:close()
    end)

    it("failed and moderated video objects, and an unknown id (new-api's task_not_exist)", function()
      local c = client("quickrouter")
      local failed = assert(c:submit{ prompt = "@hero #fail #reply=openai", references = REF })
      local mod = assert(c:submit{ prompt = "@hero #moderate #reply=openai", references = REF })
      local _, ferr = failed:wait{ timeout = 10 }
      local _, merr = mod:wait{ timeout = 10 }
      assert.equal("failed", failed.status)
      assert.matches("generation failed", ferr.message)
      assert.equal("moderated", mod.status)
      assert.equal("moderated", merr.kind)
      local ok, err = c:task("video_1"):wait{ timeout = 10 }
      assert.is_nil(ok)
      assert.equal("not_found", err.kind)
      assert.equal("task_not_exist", err.code)
      c:close()
    end)
  end)

  describe("baicai: every result shape, and a submit answered with an array", function()
    for _, shape in ipairs({ "result", "strings", "items", "items_result", "submit_array" }) do
      it("#reply=" .. shape, function()
        local c = client("baicai")
        local task = assert(c:submit{ prompt = "@hero walks #reply=" .. shape, count = 2,
                                      references = { { name = "hero", image = IMG .. "hero.png" } } })
        assert(task:wait{ timeout = 10 })
        assert.equal(2, #task.videos)
        assert.are_not.equal(task.videos[1].url, task.videos[2].url)
        assert(task:download(dir .. "/b-" .. shape .. ".mp4"))
        assert.is_true(is_mp4(dir .. "/b-" .. shape .. ".mp4"))
        assert.equal(1, sbx.stats().baicai.tasks)
        c:close()
      end)
    end
  end)

  describe("jiekou: a failure's reason from reason, else error, else message", function()
    for _, where in ipairs({ "error", "message" }) do
      it("#reply=" .. where, function()
        local c = client("jiekou")
        local f = assert(c:submit{ prompt = "@hero #fail #reply=" .. where, references = REF })
        local m = assert(c:submit{ prompt = "@hero #moderate #reply=" .. where, references = REF })
        local _, ferr = f:wait{ timeout = 10 }
        local _, merr = m:wait{ timeout = 10 }
        assert.equal("upstream error: generation failed", ferr.message)
        assert.equal("moderated", m.status)
        assert.matches("content moderation", merr.message)
        c:close()
      end)
    end
  end)

  describe("DashScope: PixVerse's frame sizes and the object store's content type", function()
    it("540p in 16:9 and 9:16, from local files, is accepted", function()
      local c = client("dashscope", { model = "v5.6" })
      for _, ratio in ipairs({ "16:9", "9:16" }) do
        local task = assert(c:submit{ prompt = "@hero runs", resolution = "540p", aspect_ratio = ratio,
                                      references = { { name = "hero", image = IMG .. "hero.png" } } })
        assert(task:wait{ timeout = 10 })
      end
      assert.equal(0, sbx.stats().dashscope.errors)
      c:close()
    end)

    it("the sandbox refuses 960*540, and an oss:// file stored without x-oss-content-type", function()
      local H = { authorization = "Bearer k", ["X-DashScope-Async"] = "enable", ["content-type"] = "application/json",
                  ["X-DashScope-OssResourceResolve"] = "enable" }
      local url = sbx.base("dashscope") .. "/api/v1/services/aigc/video-generation/video-synthesis"
      local function submit(image, size)
        return raw("POST", url, H, cjson.encode{ model = "pixverse/pixverse-v5.6-r2v",
          input = { prompt = "x", media = { { type = "image_url", url = image } } }, parameters = { size = size } })
      end
      local code, reply = submit("https://e.com/a.png", "960*540")
      assert.equal(400, code)
      assert.matches("540P is 1024%*576", reply.message)
      -- a policy, then the form without x-oss-content-type (curl(1) builds the multipart body)
      local _, pol = raw("GET", sbx.base("dashscope") .. "/api/v1/uploads?action=getPolicy&model=pixverse/pixverse-v5.6-r2v",
                         { authorization = "Bearer k" })
      local d = pol.data
      local key = d.upload_dir .. "/hero.png"
      local form = ("-F OSSAccessKeyId=%s -F Signature=%s -F policy=%s -F key=%s -F success_action_status=200 %%s "
        .. "-F file=@%shero.png"):format(d.oss_access_key_id, d.signature, d.policy, key, IMG)
      local function upload(extra)
        local st = util.run(("env -u LD_PRELOAD curl -s -o /dev/null -w '%%{http_code}' %s '%s' | grep -q 200")
          :format(form:format(extra), d.upload_host))
        assert.equal(0, st)
      end
      upload("")
      code, reply = submit("oss://" .. key, "1024*576")
      assert.equal(400, code)
      assert.matches("not an image", reply.message)
      key = d.upload_dir .. "/hero2.png"
      form = form:gsub("/hero%.png ", "/hero2.png ")
      upload("-F x-oss-content-type=image/png")
      code = submit("oss://" .. key, "1024*576")
      assert.equal(200, code)
    end)
  end)
end)
