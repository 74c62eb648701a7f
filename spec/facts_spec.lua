-- Facts the Lua layer once wrote twice, each now in one place: the mode names, the http(s) URL
-- test, the adapter list, the @name grammar, and the advice an error prints (once).
local pixflow = require "pixflow"
local core = require "pixflow.core"
local util = require "spec.support.util"
local sandbox = require "spec.support.sandbox"

-- Every Lua file of the layer, with its text.
local function lua_files()
  local _, list = util.run("ls lua/pixflow/*.lua bin/pixflow")
  local files = {}
  for path in list:gmatch("[^\n]+") do files[path] = util.read(path) end
  return files
end

local function count(text, needle)
  local n, i = 0, 1
  while true do
    local s, e = text:find(needle, i, true)
    if not s then return n end
    n, i = n + 1, e + 1
  end
end

describe("mode names", function()
  local MODES = require("pixflow.capabilities").MODES

  it("are the core's: the same names, in the same order, as csrc/adapters/common.c's mode_names", function()
    local src = util.read("csrc/adapters/common.c")
    local body = assert(src:match("mode_names%[PF_MODE__COUNT%]%s*=%s*(%b{})"))
    local c_names = {}
    for name in body:gmatch('"([^"]+)"') do c_names[#c_names + 1] = name end
    assert.same(c_names, MODES)
  end)

  it("each is one the core's request reader takes, and another name is refused there", function()
    local enc = core._adapters.apimart.encode_submit
    for _, m in ipairs(MODES) do
      local ok, err = pcall(enc, { mode = m, model = "pixverse-v6", prompt = "p" })
      if not ok then assert.is_nil(tostring(err):find("bad request field 'mode'", 1, true), m .. ": " .. tostring(err)) end
    end
    local ok, err = pcall(enc, { mode = "bogus", model = "pixverse-v6", prompt = "p" })
    assert.is_false(ok)
    assert.matches("bad request field 'mode'", tostring(err))
  end)

  it("are written once in Lua (pixflow.capabilities), and validate refuses others by that list", function()
    for path, text in pairs(lua_files()) do
      if path ~= "lua/pixflow/capabilities.lua" then
        assert.is_nil(text:find('"transition", "fusion"', 1, true), path .. " lists the modes again")
      end
    end
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = "http://127.0.0.1:9/apimart" })
    local t, err = c:submit{ prompt = "p", mode = "bogus" }
    assert.is_nil(t)
    assert.same(MODES, err.problems[1].allowed)
    c:close()
  end)
end)

describe("the http(s) URL test", function()
  local guard = require "pixflow.guard"

  it("is one function (pixflow.guard.is_url): no other Lua file matches a URL scheme itself", function()
    for path, text in pairs(lua_files()) do
      if path ~= "lua/pixflow/guard.lua" then
        assert.is_nil(text:find("https?://", 1, true), path .. " tests for a URL itself")
      end
    end
  end)

  it("every place that asks agrees with it", function()
    local cases = { "http://a.b/x.png", "https://a.b/x", "ftp://a.b/x", "http://a b/x", "http:/a", "HTTP://a.b",
                    "/local/file.png", "https://" }
    local validate = require "pixflow.validate"
    local cli = require "pixflow.cli"
    for _, s in ipairs(cases) do
      local want = guard.is_url(s)
      -- pixflow.new's base_url
      local ok = pcall(pixflow.new, { provider = "apimart", api_key = "k", base_url = s })
      assert.equal(want, ok, "base_url " .. s)
      -- an image field: a URL is taken as it is; anything else is a local file (here: missing)
      -- (jiekou has no upload call: a local file is refused as not a URL)
      local norm, err = validate.request("submit", { prompt = "@a", references = { { name = "a", image = s } } },
        "jiekou", function(m) return require("pixflow.capabilities").get("jiekou", m) end, "c1", 1)
      local refused = not norm and tostring(err):find("is not a public http(s) URL", 1, true) ~= nil
      assert.equal(not want, refused, "image " .. s)
    end
    -- the command's --base-url
    local stderr = io.stderr
    io.stderr = assert(io.open("/dev/null", "w"))
    finally(function() io.stderr:close() io.stderr = stderr end)
    for _, s in ipairs(cases) do
      if not guard.is_url(s) then
        assert.equal(cli.EXIT.usage, cli.main({ "status", "x", "--base-url", s, "--no-journal" }), s)
      end
    end
  end)
end)

describe("the adapter list", function()
  it("is the core's registry: presets are checked against core._adapters, and the refusal lists it", function()
    local names = {}
    for name in pairs(core._adapters) do names[#names + 1] = name end
    table.sort(names)
    local ok, err = pcall(pixflow.define_provider, "nowire", { adapter = "nosuch", base_url = "https://x.y",
                                                               key_env = "NOWIRE_KEY" })
    assert.is_false(ok)
    assert.matches("(known: " .. table.concat(names, ", "):gsub("%p", "%%%0") .. ")", tostring(err))
    for _, p in ipairs(pixflow.providers()) do
      assert.truthy(core._adapters[require("pixflow.providers").preset(p).adapter], p)
    end
    -- no Lua file keeps a list of its own
    assert.is_nil(util.read("lua/pixflow/providers.lua"):find("jiekou = true", 1, true))
  end)
end)

describe("the @name grammar", function()
  local validate = require "pixflow.validate"

  it("is the core's pf_name_byte: validate's class is made from core._name_bytes()", function()
    local bytes = core._name_bytes()
    local set = {}
    for i = 1, #bytes do set[bytes:byte(i)] = true end
    for b = 1, 255 do
      local c = string.char(b)
      assert.equal(set[b] == true, c:find("^" .. validate.NAME_BYTE .. "$") ~= nil, ("byte %d"):format(b))
    end
    -- the rule as documented: letters, digits, '_', '-' and every byte of a UTF-8 sequence
    assert.truthy(set[("_"):byte()] and set[("-"):byte()] and set[("z"):byte()] and set[0x80] and set[0xff])
    assert.is_nil(set[("."):byte()] or set[("@"):byte()] or set[(" "):byte()])
  end)

  it("finds the names the adapter rewrites by position (apimart's 'image N')", function()
    local prompt = "@a-b meets @猫_1, me@mail.com (@c) @z"
    local refs = {}
    for i, m in ipairs(validate.prompt_names(prompt)) do refs[i] = { name = m.name, images = { "https://e.com/" .. i .. ".png" } } end
    local req = assert(core._adapters.apimart.encode_submit({ mode = "fusion", model = "pixverse-v6", prompt = prompt,
                                                             references = refs }))
    local body = require("cjson").decode(req.body)
    assert.equal("image 1 meets image 2, me@mail.com (image 3) image 4", body.prompt)
  end)
end)

describe("advice", function()
  local errors = require "pixflow.errors"
  local sbx
  setup(function() sbx = sandbox.start{ task_seconds = 0.5 } end)
  teardown(function() sbx.stop() end)
  before_each(function() sbx.reset() end)

  -- What to do is said once: no "What to do" after a message that says it already, and no
  -- phrase of advice twice.
  local PHRASES = { "What to do", "before submitting again", "be billed", "choose another output path",
                    "pixflow resume", "wait again", "re-attach" }
  local function once(text)
    for _, p in ipairs(PHRASES) do
      assert.is_true(count(text, p) <= 1, ("%q twice in: %s"):format(p, text))
    end
  end

  it("the codes said to carry their own advice are codes the core makes", function()
    local _, src = util.run("cat csrc/engine/*.c csrc/adapters/*.c csrc/lua/*.c")
    for code in pairs(errors.ADVISED_CODES) do
      assert.truthy(src:find('"' .. code .. '"', 1, true), code)
    end
  end)

  it("is said once for an unconfirmed submit, a task deadline, a wait that gave up, and a taken output", function()
    local dir = util.tmpdir()
    local base = sbx.base("apimart")
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = base, journal = dir .. "/j.db",
                                  poll = { initial = 0.05, interval = 0.1, jitter = 0 }, task_timeout = 0.6 })
    -- unconfirmed
    sbx.faults{ { gateway = "apimart", route = "submit", action = "reset_after", times = 1 } }
    local t = assert(c:submit({ prompt = "p" }, { output = dir .. "/u.mp4" }))
    local ok, err = t:wait{ timeout = 10 }
    assert.is_nil(ok)
    assert.equal("unconfirmed", err.kind)
    once(tostring(err))
    assert.matches("before submitting again", tostring(err))
    sbx.faults{}
    -- a wait that gave up: pixflow's own message, the hint says only what to do
    t = assert(c:submit({ prompt = "p #never" }, { output = dir .. "/n.mp4" }))
    ok, err = t:wait{ timeout = 0.2 }
    assert.equal("wait_timeout", err.code)
    once(tostring(err))
    assert.matches("What to do: wait again", tostring(err))
    -- the task's deadline (the core's message says what to do)
    ok, err = t:wait()
    assert.equal("task_timeout", err.code)
    once(tostring(err))
    -- the output another task of the journal may still write
    local t2 = assert(c:submit({ prompt = "p" }, { output = dir .. "/n.mp4" }))
    local ok2, terr = t2:wait{ timeout = 10 }
    assert.is_nil(ok2)
    assert.equal("output_taken", terr.code)
    once(tostring(terr))
    c:close()
  end)

  it("is said once by the command too", function()
    local dir = util.tmpdir()
    sbx.faults{ { gateway = "apimart", route = "submit", action = "reset_after", times = 1 } }
    local status, text = util.run(("bin/pixflow generate --prompt p --sandbox %s --journal %s/j.db -o %s/a.mp4 --timeout 20")
      :format(sbx.url, dir, dir))
    assert.equal(7, status, text)
    once(text:match("pixflow: (%[unconfirmed%][^\n]*)") or error(text))
  end)
end)
