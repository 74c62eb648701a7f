-- Issue 12, section 4 (two points): `pixflow generate --json` never crashes on a value it cannot
-- encode, and gateway text (ids, messages) reaches the terminal with its control characters
-- escaped: progress lines, `pixflow list` and errors. The real bin/pixflow runs against the
-- sandbox, whose fault plan makes the gateway say these things.
local cjson = require "cjson"
local pixflow = require "pixflow"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

describe("what the command prints", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.2, reset = true }, function(s, d) sbx, dir = s, d end)
  before_each(function() sbx.faults{} end)

  local function run(args)
    return util.run(("env -u XDG_CONFIG_HOME -u PIXFLOW_CONFIG HOME=%s XDG_STATE_HOME=%s/state APIMART_API_KEY=k "
      .. "timeout 60 bin/pixflow %s"):format(dir, dir, args))
  end

  -- a finished task's real result URL, for replies the fault plan makes up
  local function result_url()
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  poll = { initial = 0.05, interval = 0.05 } })
    local t = assert(c:submit{ prompt = "x" })
    assert(t:wait{ timeout = 10 })
    local url = t.video_url
    c:close()
    return url
  end

  for _, cost in ipairs({ "NaN", "Infinity", "-inf" }) do
    it("generate --json ends in 'done' when the gateway's cost is " .. cost, function()
      local body = cjson.encode{ code = 200, data = { id = "task_nan", status = "completed", progress = 100,
        cost = cost, result = { videos = { { url = { result_url() } } } } } }
      sbx.faults{ { gateway = "apimart", route = "status", action = "reply", status = 200, body = body } }
      local out = dir .. "/nan.mp4"
      os.remove(out)
      local status, text = run(("generate --json --sandbox %s --prompt x -o %s 2>/dev/null"):format(sbx.url, out))
      assert.equal(0, status, text)
      local events = {}
      for line in text:gmatch("[^\n]+") do
        local ok, ev = pcall(cjson.decode, line)
        assert.is_true(ok, "not JSON: " .. line)
        events[#events + 1] = ev
      end
      local done = events[#events]
      assert.equal("done", done.event)
      assert.equal(out, done.path)
      local c = done.cost
      assert.is_true(c == nil or c == cjson.null or (type(c) == "table" and (c.amount == nil or c.amount == cjson.null)),
                     "cost: " .. tostring(c))
      assert.equal("ftyp", util.read(out):sub(5, 8))
    end)
  end

  it("guard.json encodes what cjson refuses, and never raises", function()
    local guard = require "pixflow.guard"
    local cyc = {}
    cyc.self = cyc
    local line = guard.json{ event = "done", a = 0 / 0, b = math.huge, c = -math.huge, s = "bad \255 utf8",
                             f = print, cyc = cyc, list = { 1, 0 / 0, "x" }, sparse = { [1] = 1, [5] = 5 },
                             err = pixflow.new_error("failed", "ESC \27[2J and C1 \194\155") }
    local ev = cjson.decode(line)
    assert.equal(cjson.null, ev.a)
    assert.equal(cjson.null, ev.b)
    assert.equal(cjson.null, ev.c)
    assert.equal("bad \239\191\189 utf8", ev.s)
    assert.same({ 1, cjson.null, "x" }, ev.list)
    assert.equal(5, ev.sparse["5"])
    assert.equal("failed", ev.err.kind)
    assert.is_nil(line:find("\27", 1, true))
    assert.is_nil(line:find("\194\155", 1, true))
    assert.matches("\\u009B", line, 1, true)
  end)

  it("an id with ESC and BEL is escaped in progress lines, errors and `pixflow list`", function()
    local id = "task_\27]0;owned\7\27[2Jx"
    sbx.faults{ { gateway = "apimart", route = "submit", action = "reply", status = 200,
                  body = cjson.encode{ code = 200, data = { { status = "submitted", task_id = id } } } } }
    local status, text = run(("generate --sandbox %s --prompt x --timeout 2 -o %s/esc.mp4"):format(sbx.url, dir))
    assert.is_true(status ~= 0, text)
    assert.matches("task_\\x1B]0;owned\\x07\\x1B[2Jx", text, 1, true)
    assert.is_nil(text:find("[\7\27]"), "a raw control character reached the terminal: " .. text)
    local lstatus, listing = run("list")
    assert.equal(0, lstatus, listing)
    assert.matches("task_\\x1B]0;owned\\x07\\x1B[2Jx", listing, 1, true)
    assert.is_nil(listing:find("[\7\27]"), listing)
    local _, json = run("list --json")
    assert.is_nil(json:find("[\7\27]"), json)
  end)

  it("a result URL with control characters is escaped by `pixflow status`", function()
    local url = result_url() .. "&x=\27]0;owned\7"
    sbx.faults{ { gateway = "apimart", route = "status", action = "reply", status = 200,
                  body = cjson.encode{ code = 200, data = { id = "task_url", status = "completed", progress = 100,
                                                            result = { videos = { { url = { url } } } } } } } }
    local status, text = run(("status task_url --sandbox %s"):format(sbx.url))
    assert.equal(0, status, text)
    assert.matches("&x=\\x1B]0;owned\\x07", text, 1, true)
    assert.is_nil(text:find("[\7\27]"), "a raw control character reached the terminal: " .. text)
  end)

  it("guard.text escapes C0, DEL, C1 and bidirectional controls and stray bytes, keeping the rest", function()
    local guard = require "pixflow.guard"
    assert.equal("plain 猫 text", guard.text("plain 猫 text"))
    assert.equal("a\\x1B[2Jb\\x07\\r\\n\\t\\x7F\\u009B\\u202E\\xFF", guard.text("a\27[2Jb\7\r\n\t\127\194\155\226\128\174\255"))
    assert.equal("two\nlines\\r", guard.text("two\nlines\r", true))
  end)
end)
