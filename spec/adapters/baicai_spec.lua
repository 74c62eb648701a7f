-- The baicai adapter against seed 002's example and providers.md section 6.
local core = require "pixflow.core"
local cjson = require "cjson"
local util = require "spec.support.util"

local A = core._adapters.baicai
local CTX = { provider = "baicai", base_url = "https://cloud.baicaiinfer.com", api_key = "sk-b" }
local function fixture(name) return (assert(util.read("spec/fixtures/baicai/" .. name), name)) end
local BASE = "https://s1.llamafactory.online/baicai-infer/users/7e4113a5a1284465831eaefaa0022a98/"

describe("baicai adapter", function()
  it("matches seed 002's request, mutil_reference and all", function()
    local out = assert(A.encode_submit({ mode = "fusion", model = "PixVerse-v4.5-MR2V",
      prompt = "@human and @dog paly on the @grass", resolution = "720p", duration = 5,
      references = { { name = "human", type = "subject", images = { BASE .. "12.png" } },
                     { name = "dog", type = "subject", images = { BASE .. "13.png" } },
                     { name = "grass", type = "background", images = { BASE .. "11.png" } } } }, CTX))
    assert.same(cjson.decode(fixture("submit_example.json")), cjson.decode(out.body))
    assert.equal("https://cloud.baicaiinfer.com/v1/videos/generations", out.url)
  end)

  it("several images per reference, several videos, prompt expansion", function()
    local out = assert(A.encode_submit({ mode = "fusion", model = "PixVerse-v4.5-MR2V", prompt = "@a x",
      references = { { name = "a", images = { "https://e.com/1.png", "https://e.com/2.png", "https://e.com/3.png" } } },
      count = 3, expand_prompt = true, negative_prompt = "blur" }, CTX))
    local b = cjson.decode(out.body)
    assert.same({ "https://e.com/1.png", "https://e.com/2.png", "https://e.com/3.png" }, b.input.mutil_reference[1].urls)
    assert.equal(3, b.input.number_of_videos)
    assert.is_true(b.need_expand_prompt)
    assert.equal("blur", b.input.negative_prompt)
    assert.equal(5, b.input.duration)           -- required: the default is filled in
    assert.equal("540p", b.input.resolution)
  end)

  it("reads data.taskId from the seed's reply", function()
    assert.equal("3524e0b3ba014b12ab1faf29f9f*****", A.decode_submit(200, fixture("submit_reply.json"), CTX))
  end)

  it("status: COMPLETED asks for the result call", function()
    local st = assert(A.decode_status(200, '{"code":0,"message":"success","data":[{"status":"COMPLETED","progress":100}]}', CTX))
    assert.is_true(st.need_result)
    assert.equal("running", st.status)
    assert.equal("queued", A.decode_status(200, '{"code":0,"data":[{"status":"PENDING","progress":0}]}', CTX).status)
    assert.equal(55, A.decode_status(200, '{"code":0,"data":[{"status":"RUNNING","progress":55}]}', CTX).progress)
    assert.equal("failed", A.decode_status(200, '{"code":0,"data":[{"status":"FAILED","progress":0}]}', CTX).status)
  end)

  it("result: data.urls, data.result.urls, or an array", function()
    for _, body in ipairs({ '{"code":0,"data":{"urls":["https://a/1.mp4","https://a/2.mp4"]}}',
                            '{"code":0,"data":{"result":{"urls":["https://a/1.mp4","https://a/2.mp4"]}}}',
                            '{"code":0,"data":[{"urls":["https://a/1.mp4"]},"https://a/2.mp4"]}' }) do
      local st = assert(A.decode_result(200, body, CTX))
      assert.equal("succeeded", st.status)
      assert.equal(2, #st.videos)
      assert.equal("https://a/2.mp4", st.videos[2].url)
    end
    assert.equal("failed", A.decode_result(200, '{"code":0,"data":{"urls":[]}}', CTX).status)
  end)

  it("a submit whose data is an array: data[0].taskId ([baoyu], providers.md 10.2 item 1)", function()
    assert.equal("3524e0b3ba014b12ab1faf29f9f00001", A.decode_submit(200, fixture("submit_reply_array.json"), CTX))
    local _, err = A.decode_submit(200, '{"code":0,"data":[]}', CTX)
    assert.equal("no_task_id", err.code)
  end)

  it("result: every shape the third-party client reads, each URL once", function()
    for _, f in ipairs({ "result_urls.json", "result_result_urls.json", "result_strings.json", "result_items.json" }) do
      local st = assert(A.decode_result(200, fixture(f), CTX))
      assert.equal("succeeded", st.status, f)
      assert.same({ { url = "https://s1.llamafactory.online/baicai-infer/out/1.mp4" },
                    { url = "https://s1.llamafactory.online/baicai-infer/out/2.mp4" } }, st.videos, f)
    end
    -- data[].result.urls: the client's own test fixture, verbatim
    local st = assert(A.decode_result(200, fixture("result_items_result.json"), CTX))
    assert.same({ { url = "https://x/r2.png" } }, st.videos)
    -- urls and result.urls naming the same video: taken once
    st = assert(A.decode_result(200, '{"code":0,"data":{"urls":["https://a/1.mp4"],"result":{"urls":["https://a/1.mp4"]}}}', CTX))
    assert.equal(1, #st.videos)
  end)

  it("errors: code in the body, HTTP status, and the moderation message", function()
    local _, err = A.decode_submit(400, '{"code":400,"message":"input.duration must be 5 or 8"}', CTX)
    assert.equal("invalid", err.kind)
    _, err = A.decode_submit(400, '{"message":"The content contains inappropriate information and does not pass the review."}', CTX)
    assert.equal("moderated", err.kind)
    _, err = A.decode_submit(200, '{"code":500,"message":"internal","data":null}', CTX)
    assert.equal("provider", err.kind)
    _, err = A.decode_submit(401, '{"code":401,"message":"unauthorized"}', CTX)
    assert.equal("auth", err.kind)
  end)

  it("upload: multipart file -> data.fullPath", function()
    local out = assert(A.encode_upload({ path = "a.png", filename = "a.png", mime = "image/png" }, CTX))
    assert.equal("https://cloud.baicaiinfer.com/v1/resources/upload", out.url)
    assert.equal("file", out.parts[1].name)
    assert.equal("https://s1/x.png", A.decode_upload({}, 200, '{"code":0,"message":"ok","data":{"fullPath":"https://s1/x.png"}}', CTX))
  end)
end)
