-- The jiekou adapter against providers.md section 4 (seed 000's fields).
local core = require "pixflow.core"
local cjson = require "cjson"
local util = require "spec.support.util"

local A = core._adapters.jiekou
local CTX = { provider = "jiekou", base_url = "https://api.jiekou.ai", api_key = "jk-key", wall_now = 5000 }
local function fixture(name) return (assert(util.read("spec/fixtures/jiekou/" .. name), name)) end

describe("jiekou adapter", function()
  it("builds the documented submit", function()
    local out = assert(A.encode_submit({ mode = "fusion", model = "pixverse-pixverse-c1-reference-to-video",
      prompt = "@hero running through @city at night",
      references = { { name = "hero", images = { "https://example.com/hero.png" }, type = "subject" },
                     { name = "city", images = { "https://example.com/city.jpg" }, type = "background" } },
      duration = 5, resolution = "720p", aspect_ratio = "16:9", audio = false }, CTX))
    assert.same(cjson.decode(fixture("submit_example.json")), cjson.decode(out.body))
    assert.equal("https://api.jiekou.ai/v3/async/pixverse-pixverse-c1-reference-to-video", out.url)
    assert.same({ "Authorization: Bearer jk-key", "Content-Type: application/json" }, out.headers)
  end)

  it("type is required per image: subject when not given", function()
    local out = assert(A.encode_submit({ mode = "fusion", model = "m", prompt = "x",
      references = { { name = "a", images = { "https://e.com/a.png" } } } }, CTX))
    assert.equal("subject", cjson.decode(out.body).images[1].type)
  end)

  it("reads task_id; queries task-result", function()
    assert.equal("8a7b1c2d", A.decode_submit(200, '{"task_id":"8a7b1c2d"}', CTX))
    assert.equal("https://api.jiekou.ai/v3/async/task-result?task_id=8a7b%201", A.encode_status("8a7b 1", CTX).url)
  end)

  it("success: videos[].video_url with a TTL given as a string", function()
    local st = assert(A.decode_status(200, fixture("status_success.json"), CTX))
    assert.equal("succeeded", st.status)
    assert.same({ { url = "https://…/output.mp4?…", expires_at = 5000 + 3600 } }, st.videos)
  end)

  it("running: progress_percent and eta", function()
    local st = assert(A.decode_status(200, fixture("status_running.json"), CTX))
    assert.equal("running", st.status)
    assert.equal(35, st.progress)
    assert.equal(40, st.eta)
  end)

  it("failed with a moderation reason is moderated; numbers as strings are read", function()
    assert.equal("moderated", A.decode_status(200, fixture("status_failed.json"), CTX).status)
    local st = A.decode_status(200, '{"task":{"status":"TASK_STATUS_PROCESSING","progress_percent":"55","eta":"12"}}', CTX)
    assert.equal(55, st.progress)
    assert.equal(12, st.eta)
    assert.equal("queued", A.decode_status(200, '{"task":{"status":"TASK_STATUS_QUEUED"}}', CTX).status)
    assert.equal("canceled", A.decode_status(200, '{"task":{"status":"TASK_STATUS_CANCELED"}}', CTX).status)
  end)

  it("a failure's reason: task.reason, else task.error, else task.message ([jk], providers.md 10.1)", function()
    local st = assert(A.decode_status(200, fixture("status_failed_error.json"), CTX))
    assert.equal("failed", st.status)
    assert.equal("upstream error: the reference image could not be fetched", st.error.message)
    st = assert(A.decode_status(200, fixture("status_failed_message.json"), CTX))
    assert.equal("moderated", st.status)
    assert.equal("content moderation: the output was flagged", st.error.message)
    st = assert(A.decode_status(200, '{"task":{"status":"TASK_STATUS_FAILED","reason":"r","error":"e","message":"m"}}', CTX))
    assert.equal("r", st.error.message)
    st = assert(A.decode_status(200, '{"task":{"status":"TASK_STATUS_FAILED","error":{"message":"nested"}}}', CTX))
    assert.equal("nested", st.error.message)
    st = assert(A.decode_status(200, '{"task":{"status":"TASK_STATUS_FAILED","reason":""}}', CTX))
    assert.equal("jiekou reports the task failed without a reason", st.error.message)
  end)

  local cases = {
    { 401, "FAILED_TO_AUTH", "auth" }, { 402, "x", "quota" }, { 403, "NOT_ENOUGH_BALANCE", "quota" },
    { 429, "RATE_LIMIT_EXCEEDED", "rate_limit" }, { 400, "INVALID_REQUEST_BODY", "invalid" },
  }
  for _, c in ipairs(cases) do
    it(("errors: %d %s -> %s"):format(c[1], c[2], c[3]), function()
      local _, err = A.decode_submit(c[1], ('{"code":%d,"reason":"%s","message":"m","metadata":{}}'):format(c[1], c[2]), CTX)
      assert.equal(c[3], err.kind)
    end)
  end

  it("has no upload and no cancel", function()
    assert.is_false(A.has_upload)
    assert.is_false(A.has_cancel)
  end)
end)
