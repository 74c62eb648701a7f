-- The PixVerse platform adapter (presets pixverse and quickrouter), against seed 004's example and
-- the shapes of providers.md section 2. 64-bit ids are checked on the raw JSON text: lua-cjson
-- would round them, which is exactly what must never happen.
local core = require "pixflow.core"
local cjson = require "cjson"
local util = require "spec.support.util"

local A = core._adapters.pixverse
local PV = { provider = "pixverse", base_url = "https://app-api.pixverse.ai", api_key = "pv-key",
             auth = "api-key", trace_id = "3f2504e0-4f89-41d3-9a0c-0305e82c3301" }
local QR = { provider = "quickrouter", base_url = "https://api.quickrouter.ai", api_key = "qr-key",
             auth = "bearer", trace_id = "3f2504e0-4f89-41d3-9a0c-0305e82c3301" }

local function fixture(name) return (assert(util.read("spec/fixtures/" .. name), name)) end

describe("pixverse adapter", function()
  it("fusion matches seed 004's request example (QuickRouter, Bearer)", function()
    local out = assert(A.encode_submit({ mode = "fusion", model = "v5.6", prompt = "@dog plays at @room",
      references = { { name = "dog", images = { "0" }, type = "subject" },
                     { name = "room", images = { "0" }, type = "background" } },
      duration = 5, resolution = "720p", aspect_ratio = "16:9", seed = 123456789 }, QR))
    assert.same(cjson.decode(fixture("quickrouter/fusion_example.json")), cjson.decode(out.body))
    assert.equal("https://api.quickrouter.ai/openapi/v2/video/fusion/generate", out.url)
    assert.same({ "Authorization: Bearer qr-key", "Ai-trace-id: 3f2504e0-4f89-41d3-9a0c-0305e82c3301",
                  "Content-Type: application/json", "Accept: application/json" }, out.headers)
  end)

  it("the official preset sends API-KEY and the trace id", function()
    local out = assert(A.encode_status("629000000000000010", PV))
    assert.equal("https://app-api.pixverse.ai/openapi/v2/video/result/629000000000000010", out.url)
    assert.same({ "API-KEY: pv-key", "Ai-trace-id: 3f2504e0-4f89-41d3-9a0c-0305e82c3301" }, out.headers)
  end)

  it("ids beyond 2^53 go out as exact JSON integers", function()
    local out = assert(A.encode_submit({ mode = "fusion", model = "c1", prompt = "@a x",
      references = { { name = "a", images = { "629000000000000001" } } } }, PV))
    assert.matches('"img_id":629000000000000001', out.body, 1, true)
    out = assert(A.encode_submit({ mode = "extend", model = "v5", prompt = "on",
                                   extend_from = "629000000000000001" }, PV))
    assert.matches('"source_video_id":629000000000000001', out.body, 1, true)
    assert.equal("https://app-api.pixverse.ai/openapi/v2/video/extend/generate", out.url)
  end)

  it("... and come back exact, as strings", function()
    assert.equal("629000000000000001",
      A.decode_submit(200, '{"ErrCode":0,"ErrMsg":"success","Resp":{"video_id":629000000000000001}}', PV))
    local id, ttl = A.decode_upload({ path = "x.png", filename = "x.png" }, 200, fixture("pixverse/upload_reply.json"), PV)
    assert.equal("629000000000000001", id)
    assert.equal(0, ttl)
  end)

  it("each mode has its endpoint and fields, defaults filled where the API requires them", function()
    local cases = {
      { { mode = "text", prompt = "p", model = "v5" }, "/text/generate",
        { prompt = "p", model = "v5", duration = 5, quality = "540p", aspect_ratio = "16:9" } },
      { { mode = "image", prompt = "p", model = "v5", image = "12" }, "/img/generate",
        { prompt = "p", model = "v5", duration = 5, quality = "540p", img_id = 12 } },
      { { mode = "transition", prompt = "p", model = "v5", first_frame = "1", last_frame = "2", duration = 8 },
        "/transition/generate",
        { prompt = "p", model = "v5", duration = 8, quality = "540p", first_frame_img = 1, last_frame_img = 2 } },
    }
    for _, c in ipairs(cases) do
      local out = assert(A.encode_submit(c[1], PV))
      assert.equal("https://app-api.pixverse.ai/openapi/v2/video" .. c[2], out.url)
      assert.same(c[3], cjson.decode(out.body))
    end
  end)

  it("a non-numeric img_id is refused before sending", function()
    local out, err = A.encode_submit({ mode = "image", prompt = "p", model = "v5", image = "https://x/y.png" }, PV)
    assert.is_nil(out)
    assert.equal("invalid", err.kind)
  end)

  it("upload: the file as 'image', or a URL as 'image_url'", function()
    local out = assert(A.encode_upload({ path = "spec/fixtures/images/hero.png", filename = "hero.png", mime = "image/png" }, PV))
    assert.equal("https://app-api.pixverse.ai/openapi/v2/image/upload", out.url)
    assert.same({ { name = "image", file = "spec/fixtures/images/hero.png", filename = "hero.png", type = "image/png" } }, out.parts)
    out = assert(A.encode_upload({ url = "https://e.com/a.png", filename = "image" }, PV))
    assert.same({ { name = "image_url", value = "https://e.com/a.png" } }, out.parts)
  end)

  describe("status", function()
    it("5 is running, and a url filled at 5 is never taken (the trap)", function()
      local body = fixture("pixverse/status_generating.json"):gsub('"url": ""', '"url": "https://media.pixverse.ai/early.mp4"')
      local st = assert(A.decode_status(200, body, PV))
      assert.equal("running", st.status)
      assert.same({}, st.videos)
    end)
    it("1 is succeeded with the url", function()
      local st = assert(A.decode_status(200, fixture("pixverse/status_success.json"), PV))
      assert.equal("succeeded", st.status)
      assert.equal("https://media.pixverse.ai/....mp4", st.videos[1].url)
    end)
    it("7 is moderated, 8 failed, 6 canceled", function()
      assert.equal("moderated", A.decode_status(200, fixture("pixverse/status_moderated.json"), PV).status)
      assert.equal("failed", A.decode_status(200, fixture("pixverse/status_failed.json"), PV).status)
      assert.equal("canceled", A.decode_status(200, '{"ErrCode":0,"Resp":{"status":6,"url":""}}', PV).status)
    end)
    it("1 without a url is a failure", function()
      local st = assert(A.decode_status(200, '{"ErrCode":0,"ErrMsg":"success","Resp":{"status":1,"url":""}}', PV))
      assert.equal("failed", st.status)
      assert.equal("no_video_url", st.error.code)
    end)
    it("500008 is not_found", function()
      local _, err = A.decode_status(200, fixture("pixverse/status_unknown_id.json"), PV)
      assert.equal("not_found", err.kind)
      assert.equal("500008", err.code)
    end)
  end)

  describe("costs: PixVerse credits, from the submit and from the result (providers.md 10.1)", function()
    it("the submit's Resp.credits comes back with the id, in credits ([DMX]'s reply)", function()
      local id, costs = A.decode_submit(200, fixture("pixverse/submit_reply_credits.json"), PV)
      assert.equal("397959606526648", id)
      assert.same({ { amount = 65, unit = "credits" } }, costs)
      assert.equal("65 credits", tostring(costs[1]))
      local _, none = A.decode_submit(200, '{"ErrCode":0,"ErrMsg":"success","Resp":{"video_id":1}}', PV)
      assert.is_nil(none)
    end)
    it("the result's credits are the task's cost", function()
      local st = assert(A.decode_status(200, fixture("pixverse/status_success_credits.json"), PV))
      assert.equal("succeeded", st.status)
      assert.same({ amount = 65, unit = "credits" }, st.cost)
      assert.same({ { amount = 65, unit = "credits" } }, st.costs)
      assert.equal("https://media.pixverseai.cn/openapi/output.mp4", st.videos[1].url)
    end)
  end)

  it("statuses 2 and 3 (the vendor's own client's pending and in progress) are queued and running", function()
    local st = assert(A.decode_status(200, fixture("pixverse/status_pending.json"), PV))
    assert.equal("queued", st.status)
    assert.same({}, st.videos)
    st = assert(A.decode_status(200, fixture("pixverse/status_in_progress.json"), PV))
    assert.equal("running", st.status)
    assert.equal("running", A.decode_status(200, '{"ErrCode":0,"Resp":{"status":4,"url":""}}', PV).status)
  end)

  describe("an id beyond 64 bits is reported as such, not as 'not JSON'", function()
    it("a submit reply", function()
      local id, err = A.decode_submit(200, fixture("pixverse/submit_big_id.json"), PV)
      assert.is_nil(id)
      assert.equal("protocol", err.kind)
      assert.equal("big_integer", err.code)
      assert.matches("holds the integer 18446744073709551616, beyond 64 bits", err.message, 1, true)
      assert.not_matches("not JSON", err.message, 1, true)
      assert.is_false(err.retryable)
    end)
    it("an upload reply, a negative one, and the status of another gateway", function()
      local r, err = A.decode_upload({ path = "x.png", filename = "x.png" }, 200,
        '{"ErrCode":0,"ErrMsg":"success","Resp":{"img_id":99999999999999999999999,"img_url":"u"}}', PV)
      assert.is_nil(r)
      assert.matches("99999999999999999999999, beyond 64 bits", err.message, 1, true)
      _, err = A.decode_submit(200, '{"ErrCode":0,"Resp":{"video_id":-9223372036854775809}}', PV)
      assert.matches("-9223372036854775809, beyond 64 bits", err.message, 1, true)
      _, err = core._adapters.apimart.decode_status(200, '{"code":200,"data":{"id":1e999}}', PV)
      assert.equal("bad_json", err.code)            -- a real number out of range is not an id
    end)
  end)

  describe("QuickRouter: an OpenAI-style video object and error body (providers.md 10.2 item 4)", function()
    it("the submit's video object gives the relay's id", function()
      assert.equal("task_7Kq2VxR9mZpLw3Yb", A.decode_submit(200, fixture("quickrouter/video_queued.json"), QR))
    end)
    it("queued, in_progress, completed (metadata.url), failed", function()
      local st = assert(A.decode_status(200, fixture("quickrouter/video_queued.json"), QR))
      assert.equal("queued", st.status)
      st = assert(A.decode_status(200, fixture("quickrouter/video_in_progress.json"), QR))
      assert.equal("running", st.status)
      assert.equal(40, st.progress)
      st = assert(A.decode_status(200, fixture("quickrouter/video_completed.json"), QR))
      assert.equal("succeeded", st.status)
      assert.equal("https://media.pixverse.ai/openapi/output.mp4", st.videos[1].url)
      st = assert(A.decode_status(200, fixture("quickrouter/video_failed.json"), QR))
      assert.equal("moderated", st.status)
      assert.equal("task_failed", st.error.code)
      assert.matches("content moderation failed", st.error.message)
      st = assert(A.decode_status(200, '{"id":"v","object":"video","status":"failed","error":{"message":"boom"}}', QR))
      assert.equal("failed", st.status)
      assert.equal("boom", st.error.message)
      st = assert(A.decode_status(200, '{"id":"v","object":"video","status":"completed","url":"https://e/v.mp4"}', QR))
      assert.equal("https://e/v.mp4", st.videos[1].url)
      st = assert(A.decode_status(200, '{"id":"v","object":"video","status":"completed","metadata":{}}', QR))
      assert.equal("failed", st.status)
      assert.equal("no_video_url", st.error.code)
    end)
    it("error bodies: new-api's task error and OpenAI's error.code", function()
      local _, err = A.decode_status(400, fixture("quickrouter/error_task_not_exist.json"), QR)
      assert.equal("not_found", err.kind)
      assert.equal("task_not_exist", err.code)
      _, err = A.decode_submit(400, fixture("quickrouter/error_openai.json"), QR)
      assert.equal("moderated", err.kind)
      assert.equal("content_policy_violation", err.code)
      assert.matches("safety system", err.message)
      _, err = A.decode_submit(429, '{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}', QR)
      assert.equal("rate_limit", err.kind)
      assert.is_true(err.retryable)
    end)
  end)

  describe("errors: ErrCode on HTTP 200, the lower-case envelope, relay errors", function()
    local cases = {
      { 200, '{"ErrCode":10002,"ErrMsg":"invalid api key","Resp":null}', "auth", false },
      { 200, '{"ErrCode":500090,"ErrMsg":"insufficient balance"}', "quota", false },
      { 200, '{"ErrCode":500044,"ErrMsg":"concurrent generation limit reached"}', "rate_limit", true },
      { 200, '{"ErrCode":500063,"ErrMsg":"moderation failed"}', "moderated", false },
      { 200, '{"ErrCode":400017,"ErrMsg":"invalid parameter"}', "invalid", false },
      { 200, '{"ErrCode":500069,"ErrMsg":"system under high load"}', "rate_limit", true },
      { 200, '{"ErrCode":99999,"ErrMsg":"unknown error"}', "provider", true },
      { 500, fixture("pixverse/upload_moderated.json"), "moderated", false },
      { 401, '{"error":{"message":"invalid token","type":"new_api_error"}}', "auth", false },
      { 403, '{"error":{"message":"user quota is not enough","type":"insufficient_user_quota","code":"insufficient_user_quota"}}', "quota", false },
      { 429, '{"error":{"message":"rate limit","type":"rate_limit_error"}}', "rate_limit", true },
    }
    for _, c in ipairs(cases) do
      it(("HTTP %d %s -> %s"):format(c[1], c[2]:sub(1, 40), c[3]), function()
        local id, err = A.decode_submit(c[1], c[2], QR)
        assert.is_nil(id)
        assert.equal(c[3], err.kind)
        assert.equal(c[4], err.retryable)
      end)
    end
    it("a 200 without Resp.video_id is a protocol error (the outcome is unknown)", function()
      local _, err = A.decode_submit(200, '{"ErrCode":0,"ErrMsg":"success","Resp":{}}', PV)
      assert.equal("protocol", err.kind)
    end)
  end)
end)
