-- The DashScope adapter against seed 001's example and providers.md section 5.
local core = require "pixflow.core"
local cjson = require "cjson"
local util = require "spec.support.util"

local A = core._adapters.dashscope
local CTX = { provider = "dashscope", base_url = "https://dashscope.aliyuncs.com", api_key = "ds-key",
              wall_now = 1000, ref_names = false }
local NAMED = { provider = "dashscope", base_url = "https://dashscope.aliyuncs.com", api_key = "ds-key",
                ref_names = true }

local function fixture(name) return (assert(util.read("spec/fixtures/dashscope/" .. name), name)) end
local SEED_URLS = {
  "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20260320/knsple/wan-r2v-role-frame.jpg",
  "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20260129/qpzxps/wan-r2v-object4.png",
  "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20260129/wfjikw/wan-r2v-backgroud5.png",
}

describe("dashscope adapter", function()
  it("matches seed 001's request (names off), with the async header", function()
    local refs = {}
    for i, u in ipairs(SEED_URLS) do refs[i] = { name = "r" .. i, images = { u } } end
    local out = assert(A.encode_submit({ mode = "fusion", model = "pixverse/pixverse-c1-r2v",
      prompt = "男人坐在靠窗的椅子上,手持吉他,在咖啡厅旁演奏一首舒缓的美国乡村民谣", references = refs,
      resolution = "720p", aspect_ratio = "16:9", duration = 5, audio = false, watermark = true }, CTX))
    assert.same(cjson.decode(fixture("submit_example.json")), cjson.decode(out.body))
    assert.equal("https://dashscope.aliyuncs.com/api/v1/services/aigc/video-generation/video-synthesis", out.url)
    assert.same({ "Authorization: Bearer ds-key", "X-DashScope-Async: enable", "Content-Type: application/json" },
                out.headers)
  end)

  it("with names on, media items carry ref_name and the prompt keeps its @names", function()
    local out = assert(A.encode_submit({ mode = "fusion", model = "m", prompt = "@hero x",
      references = { { name = "hero", images = { "https://e.com/h.png" } } } }, NAMED))
    local b = cjson.decode(out.body)
    assert.same({ { type = "image_url", url = "https://e.com/h.png", ref_name = "hero" } }, b.input.media)
    assert.equal("@hero x", b.input.prompt)
  end)

  it("with names off, @names become image N", function()
    local out = assert(A.encode_submit({ mode = "fusion", model = "m", prompt = "@a and @b",
      references = { { name = "a", images = { "https://e.com/1.png" } }, { name = "b", images = { "https://e.com/2.png" } } } }, CTX))
    assert.equal("image 1 and image 2", cjson.decode(out.body).input.prompt)
  end)

  it("computes size from resolution and aspect ratio", function()
    local cases = { { "720p", "16:9", "1280*720" }, { "720p", "9:16", "720*1280" }, { "360p", "16:9", "640*360" },
                    { "1080p", "16:9", "1920*1080" }, { "720p", "4:3", "960*720" }, { "720p", "1:1", "720*720" },
                    { "540p", "21:9", "1344*576" } }
    for _, c in ipairs(cases) do
      local out = assert(A.encode_submit({ mode = "fusion", model = "m", prompt = "x", resolution = c[1],
        aspect_ratio = c[2], references = { { name = "a", images = { "https://e.com/1.png" } } } }, CTX))
      assert.equal(c[3], cjson.decode(out.body).parameters.size, c[1] .. " " .. c[2])
    end
  end)

  it("540p is PixVerse's own frame, 1024*576, not 960*540 (providers.md 10.2 item 2)", function()
    -- 16:9 and 9:16 are sourced ([DMX] and the priced sizes); the other ratios keep the short
    -- side 576 [INFERENCE]
    local cases = { { "16:9", "1024*576" }, { "9:16", "576*1024" }, { "4:3", "768*576" }, { "3:4", "576*768" },
                    { "1:1", "576*576" }, { "3:2", "864*576" }, { "2:3", "576*864" } }
    for _, c in ipairs(cases) do
      local out = assert(A.encode_submit({ mode = "fusion", model = "m", prompt = "x", resolution = "540p",
        aspect_ratio = c[1], references = { { name = "a", images = { "https://e.com/1.png" } } } }, CTX))
      assert.equal(c[2], cjson.decode(out.body).parameters.size, c[1])
    end
  end)

  it("an oss:// image adds the resolve header", function()
    local out = assert(A.encode_submit({ mode = "fusion", model = "m", prompt = "x",
      references = { { name = "a", images = { "oss://dir/a.png" } } } }, CTX))
    assert.same({ "Authorization: Bearer ds-key", "X-DashScope-Async: enable", "Content-Type: application/json",
                  "X-DashScope-OssResourceResolve: enable" }, out.headers)
  end)

  it("reads output.task_id", function()
    assert.equal("<string>", A.decode_submit(200, fixture("submit_reply.json"), CTX))
  end)

  describe("status", function()
    it("SUCCEEDED: the video URL, expiring in 24 h", function()
      local st = assert(A.decode_status(200, fixture("status_succeeded.json"), CTX))
      assert.equal("succeeded", st.status)
      assert.equal(1000 + 86400, st.videos[1].expires_at)
    end)
    it("FAILED", function()
      local st = assert(A.decode_status(200, fixture("status_failed.json"), CTX))
      assert.equal("failed", st.status)
      assert.equal("InvalidParameter", st.error.code)
    end)
    it("FAILED with DataInspectionFailed is moderated", function()
      local st = assert(A.decode_status(200, '{"output":{"task_status":"FAILED","code":"DataInspectionFailed","message":"x"}}', CTX))
      assert.equal("moderated", st.status)
    end)
    it("PENDING and SUSPENDED are queued, RUNNING running, CANCELED canceled", function()
      for s, want in pairs({ PENDING = "queued", SUSPENDED = "queued", RUNNING = "running", CANCELED = "canceled" }) do
        assert.equal(want, A.decode_status(200, '{"output":{"task_status":"' .. s .. '"}}', CTX).status)
      end
    end)
    it("UNKNOWN is not_found", function()
      local _, err = A.decode_status(200, fixture("status_unknown.json"), CTX)
      assert.equal("not_found", err.kind)
      assert.is_false(err.retryable)
    end)
  end)

  describe("errors", function()
    local cases = {
      { 400, "InvalidParameter", "invalid" }, { 400, "DataInspectionFailed", "moderated" },
      { 401, "InvalidApiKey", "auth" }, { 403, "AccessDenied", "auth" }, { 403, "Arrearage", "quota" },
      { 404, "ModelNotFound", "invalid" }, { 429, "Throttling.RateQuota", "rate_limit" },
      { 500, "InternalServerError", "provider" },
    }
    for _, c in ipairs(cases) do
      it(("%d %s -> %s"):format(c[1], c[2], c[3]), function()
        local _, err = A.decode_submit(c[1], ('{"request_id":"r","code":"%s","message":"m"}'):format(c[2]), CTX)
        assert.equal(c[3], err.kind)
        assert.equal(c[2], err.code)
      end)
    end
  end)

  it("cancel: POST /api/v1/tasks/{id}/cancel", function()
    local out = assert(A.encode_cancel("abc-1", CTX))
    assert.equal("POST", out.method)
    assert.equal("https://dashscope.aliyuncs.com/api/v1/tasks/abc-1/cancel", out.url)
    assert.is_true(A.decode_cancel(200, '{"request_id":"r"}', CTX))
    local _, err = A.decode_cancel(400, '{"code":"UnsupportedOperation","message":"not PENDING"}', CTX)
    assert.equal("invalid", err.kind)
  end)

  it("upload: the form's x-oss-content-type is the file's MIME type, as the SDK sends it ([DSp])", function()
    local _, _, state = A.decode_upload({ step = 0 }, 200, fixture("policy_reply.json"), CTX)
    for _, m in ipairs({ "image/png", "image/jpeg", "image/webp" }) do
      local out = assert(A.encode_upload({ path = "a", filename = "a", mime = m, step = 1, state = state }, CTX))
      assert.same({ name = "x-oss-content-type", value = m }, out.parts[8])
      assert.equal("file", out.parts[9].name)
    end
  end)

  it("upload: a policy for the model, then the object store form with the file last", function()
    local out = assert(A.encode_upload({ path = "spec/fixtures/images/hero.png", filename = "hero.png",
      mime = "image/png", model = "pixverse/pixverse-c1-r2v", step = 0 }, CTX))
    assert.equal("https://dashscope.aliyuncs.com/api/v1/uploads?action=getPolicy&model=pixverse%2Fpixverse-c1-r2v", out.url)
    local what, step, state = A.decode_upload({ step = 0 }, 200, fixture("policy_reply.json"), CTX)
    assert.equal("next", what)
    assert.equal(1, step)
    local up = { path = "spec/fixtures/images/hero.png", filename = "hero.png", mime = "image/png", step = 1, state = state }
    out = assert(A.encode_upload(up, CTX))
    assert.equal("https://dashscope-file-….oss-cn-beijing.aliyuncs.com", out.url)
    assert.same({}, out.headers)          -- the key never goes to the object store
    local names = {}
    for i, p in ipairs(out.parts) do names[i] = p.name end
    assert.same({ "OSSAccessKeyId", "Signature", "policy", "key", "x-oss-object-acl", "x-oss-forbid-overwrite",
                  "success_action_status", "x-oss-content-type", "file" }, names)
    assert.equal("dashscope-instant/<hash>/2025-06-01/<uuid>/hero.png", out.parts[4].value)
    local result, ttl = A.decode_upload(up, 200, "", CTX)
    assert.equal("oss://dashscope-instant/<hash>/2025-06-01/<uuid>/hero.png", result)
    assert.equal(48 * 3600, ttl)
  end)
end)
