-- The apimart adapter, encode and decode, against seed 003's own examples (spec/fixtures/apimart).
local core = require "pixflow.core"
local cjson = require "cjson"
local util = require "spec.support.util"

local A = core._adapters.apimart
local CTX = { provider = "apimart", base_url = "https://api.apimart.ai", api_key = "sk-test-123" }

local function fixture(name)
  return (assert(util.read("spec/fixtures/apimart/" .. name), name))
end

local function encode(req)
  local out = assert(A.encode_submit(req, CTX))
  return out, cjson.decode(out.body)
end

describe("apimart adapter", function()
  describe("encode_submit", function()
    it("text mode matches the seed's request example", function()
      local out, body = encode{ mode = "text", model = "pixverse-v6",
        prompt = "A cinematic shot of a corgi running through a sunflower field at golden hour",
        aspect_ratio = "16:9", resolution = "540p", duration = 5 }
      assert.same(cjson.decode(fixture("submit_text.json")), body)
      assert.equal("POST", out.method)
      assert.equal("https://api.apimart.ai/v1/videos/generations", out.url)
      assert.same({ "Authorization: Bearer sk-test-123", "Content-Type: application/json" }, out.headers)
    end)

    it("scene 1 (text with seed and audio)", function()
      local _, body = encode{ mode = "text", model = "pixverse-v6",
        prompt = "A neon-lit alley in Tokyo at night, light rain, anamorphic lens flare",
        aspect_ratio = "21:9", resolution = "720p", duration = 8, seed = 42, audio = true }
      assert.same(cjson.decode(fixture("scene1_text.json")), body)
    end)

    it("scene 2 (image)", function()
      local _, body = encode{ mode = "image", model = "pixverse-v6",
        prompt = "Camera slowly zooms in, gentle wind moves the leaves",
        image = "https://example.com/first-frame.jpg", resolution = "540p", duration = 5 }
      assert.same(cjson.decode(fixture("scene2_image.json")), body)
    end)

    it("scene 3 (transition); motion_mode is not sent, 'normal' being v6's only value", function()
      local _, body = encode{ mode = "transition", model = "pixverse-v6",
        prompt = "transform smoothly from a puppy to a cat",
        first_frame = "https://example.com/puppy.jpg", last_frame = "https://example.com/cat.jpg",
        resolution = "540p", duration = 5 }
      local want = cjson.decode(fixture("scene3_transition.json"))
      want.motion_mode = nil
      assert.same(want, body)
    end)

    it("scene 4 (fusion): references become img_references in order", function()
      local _, body = encode{ mode = "fusion", model = "pixverse-v6",
        prompt = "A girl wearing the outfit from image 2, holding the cat from image 3",
        references = {
          { name = "girl", images = { "https://example.com/character.jpg" } },
          { name = "outfit", images = { "https://example.com/outfit.jpg" } },
          { name = "cat", images = { "https://example.com/cat.jpg" }, type = "subject" },
        },
        aspect_ratio = "9:16", resolution = "720p", duration = 5 }
      assert.same(cjson.decode(fixture("scene4_fusion.json")), body)
    end)

    it("scene 5 (extend)", function()
      local _, body = encode{ mode = "extend", model = "pixverse-v6",
        prompt = "the character now walks into a forest", extend_from = "task_01JWXXXXXXXXXXXX",
        resolution = "540p", duration = 5 }
      assert.same(cjson.decode(fixture("scene5_extend.json")), body)
    end)

    it("rewrites @names to 'image N' by position, leaving other @ alone", function()
      local _, body = encode{ mode = "fusion", model = "pixverse-v6",
        prompt = "@hero runs through @city, mail me@example.com about @nobody",
        references = { { name = "hero", images = { "https://e.com/h.png" } },
                       { name = "city", images = { "https://e.com/c.png" } } } }
      assert.equal("image 1 runs through image 2, mail me@example.com about @nobody", body.prompt)
    end)

    it("sends exactly one mode field", function()
      local _, body = encode{ mode = "image", model = "pixverse-v6", prompt = "p",
        image = "https://e.com/a.png" }
      assert.is_nil(body.img_references)
      assert.is_nil(body.first_frame_image)
      assert.is_nil(body.extend_from_task_id)
      assert.same({ "https://e.com/a.png" }, body.image_urls)
    end)

    it("escapes the task id in the status URL", function()
      local out = assert(A.encode_status("task_01 /x", CTX))
      assert.equal("GET", out.method)
      assert.equal("https://api.apimart.ai/v1/tasks/task_01%20%2Fx", out.url)
      assert.same({ "Authorization: Bearer sk-test-123" }, out.headers)
    end)
  end)

  describe("decode_submit", function()
    it("reads data[0].task_id from the seed's reply", function()
      assert.equal("task_01JWXXXXXXXXXXXX", A.decode_submit(200, fixture("submit_200.json"), CTX))
    end)

    local cases = {
      { 400, "error_400.json", "invalid", "invalid duration 20, allowed range: 1-15 seconds" },
      { 401, "error_401.json", "auth", "身份验证失败，请检查您的 API 密钥" },
      { 403, "error_403.json", "quota", "insufficient quota: balance=0, required=0.25" },
      { 429, "error_429.json", "rate_limit", "请求过于频繁，请稍后再试" },
    }
    for _, c in ipairs(cases) do
      it(("maps HTTP %d to kind %s"):format(c[1], c[3]), function()
        local id, err = A.decode_submit(c[1], fixture(c[2]), CTX)
        assert.is_nil(id)
        assert.equal(c[3], err.kind)
        assert.equal(c[4], err.message)
        assert.equal(c[1], err.status)
        assert.equal("apimart", err.provider)
        assert.equal(c[3] == "rate_limit", err.retryable)
      end)
    end

    it("a 200 without a task id is a protocol error, not a success", function()
      local id, err = A.decode_submit(200, '{"code":200,"data":[]}', CTX)
      assert.is_nil(id)
      assert.equal("protocol", err.kind)
      assert.equal("no_task_id", err.code)
    end)

    it("an HTML 502 page is a retryable provider error", function()
      local _, err = A.decode_submit(502, "<html><body>Bad Gateway</body></html>", CTX)
      assert.equal("provider", err.kind)
      assert.is_true(err.retryable)
      assert.matches("not JSON", err.message)
    end)
  end)

  describe("decode_status", function()
    it("completed: the URL array, expiry and cost of the seed's example", function()
      local st = assert(A.decode_status(200, fixture("status_completed.json"), CTX))
      assert.equal("succeeded", st.status)
      assert.equal(100, st.progress)
      assert.same({ amount = 0.2, unit = "USD" }, st.cost)
      assert.same({ { url = "https://upload.apimart.ai/f/video/xxxx.mp4", expires_at = 1780045399 } },
                  st.videos)
    end)

    it("cost and credits_cost are both kept, each with its unit; the currency one is the cost", function()
      local st = assert(A.decode_status(200, fixture("status_completed.json"), CTX))
      assert.same({ { amount = 0.2, unit = "USD" }, { amount = 2, unit = "credits" } }, st.costs)
      assert.equal("0.2 USD", tostring(st.cost))
      assert.equal("2 credits", tostring(st.costs[2]))
      assert.equal("integer", math.type(st.costs[2].amount))
      st = assert(A.decode_status(200, fixture("status_failed.json"), CTX))
      assert.same({ { amount = 0, unit = "USD" }, { amount = 0, unit = "credits" } }, st.costs)
    end)

    it("a cost that is not a finite number is no cost", function()
      local st = assert(A.decode_status(200, '{"code":200,"data":{"status":"processing","cost":"NaN","credits_cost":"inf"}}', CTX))
      assert.is_nil(st.cost)
      assert.is_nil(st.costs)
    end)

    it("failed with a moderation message is 'moderated'", function()
      local st = assert(A.decode_status(200, fixture("status_failed.json"), CTX))
      assert.equal("moderated", st.status)
      assert.equal("moderated", st.error.kind)
      assert.equal("pixverse error 400063: moderation failed", st.error.message)
      assert.equal("task_failed", st.error.code)
    end)

    it("failed for another reason is 'failed'", function()
      local body = fixture("status_failed.json"):gsub("400063: moderation failed", "500100: boom")
      local st = assert(A.decode_status(200, body, CTX))
      assert.equal("failed", st.status)
      assert.equal("failed", st.error.kind)
    end)

    it("pending is queued, processing is running, with an ETA from estimated_time", function()
      local st = assert(A.decode_status(200, fixture("status_pending.json"),
                                        { provider = "apimart", wall_now = 1779958948 + 30 }))
      assert.equal("queued", st.status)
      assert.equal(70, st.eta)
      st = assert(A.decode_status(200, fixture("status_processing.json"), CTX))
      assert.equal("running", st.status)
      assert.equal(40, st.progress)
    end)

    it("completed without a URL is a failure, never a success", function()
      local st = assert(A.decode_status(200,
        '{"code":200,"data":{"status":"completed","result":{"videos":[{"url":[]}]}}}', CTX))
      assert.equal("failed", st.status)
      assert.equal("no_video_url", st.error.code)
    end)

    it("a bare string url is accepted as well as the documented array", function()
      local st = assert(A.decode_status(200,
        '{"code":200,"data":{"status":"completed","result":{"videos":[{"url":"https://a/b.mp4"}]}}}', CTX))
      assert.equal("https://a/b.mp4", st.videos[1].url)
    end)

    it("an unknown status keeps the task running", function()
      local st = assert(A.decode_status(200, '{"code":200,"data":{"status":"warming_up"}}', CTX))
      assert.equal("running", st.status)
    end)

    it("cancelled is canceled", function()
      local st = assert(A.decode_status(200, '{"code":200,"data":{"status":"cancelled"}}', CTX))
      assert.equal("canceled", st.status)
    end)

    it("404 is not_found; a reply without data.status is a retryable protocol error", function()
      local _, err = A.decode_status(404, '{"error":{"code":404,"message":"task not found"}}', CTX)
      assert.equal("not_found", err.kind)
      assert.is_false(err.retryable)
      _, err = A.decode_status(200, '{"code":200}', CTX)
      assert.equal("protocol", err.kind)
      assert.is_true(err.retryable)
    end)

    it("invalid UTF-8 in a message is replaced, never passed on", function()
      local _, err = A.decode_status(400, '{"error":{"message":"bad \255\254 byte","type":"invalid_request_error"}}', CTX)
      assert.equal("invalid", err.kind)
      assert.matches("not valid UTF-8 JSON", err.message, 1, true)
      assert.matches("bad ?? byte", err.message, 1, true)
      assert.is_truthy(utf8.len(err.message))
    end)
  end)
end)
