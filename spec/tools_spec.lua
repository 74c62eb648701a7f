-- The command-line tool, the demo, and the LuaRocks build: what a newcomer runs first.
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

describe("bin/pixflow", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.3 }, function(s, d) sbx, dir = s, d end)

  -- #noasan: env -i drops the ASan runtime that make test-asan preloads
  it("runs with no environment set #noasan", function()
    local status, out = util.run("env -i /usr/bin/env bin/pixflow version")
    assert.equal(0, status)
    assert.matches("^pixflow %d+%.%d+%.%d+\n$", out)
  end)

  it("suggests the command meant, and exits 1", function()
    local status, out = util.run("bin/pixflow genrate")
    assert.equal(1, status)
    assert.matches("did you mean 'generate'", out)
  end)

  it("generate makes an MP4 against the sandbox", function()
    local out = dir .. "/cli.mp4"
    local status, text = util.run(("APIMART_API_KEY=k bin/pixflow generate --base-url %s "
      .. "--prompt '@hero walks into @city' --ref hero=https://e.com/h.png "
      .. "--ref city=https://e.com/c.jpg:background --duration 5 -o %s"):format(sbx.base("apimart"), out))
    assert.equal(0, status, text)
    assert.equal("ftyp", util.read(out):sub(5, 8))
    assert.matches(out, text, 1, true)
  end)

  it("generate refuses an invalid request before sending it, exit 2", function()
    sbx.reset()
    local status, text = util.run(("APIMART_API_KEY=k bin/pixflow generate --base-url %s "
      .. "--prompt x --duration 20 --aspect 5:4"):format(sbx.base("apimart")))
    assert.equal(2, status)
    assert.matches("duration: 20 is not allowed", text)
    assert.matches("aspect_ratio", text)
    assert.equal(0, sbx.stats().apimart.submits)
  end)

  it("generate with a wrong key exits 3 and never prints the key", function()
    local status, text = util.run(("APIMART_API_KEY=invalid bin/pixflow generate --base-url %s "
      .. "--prompt x -o %s/k.mp4"):format(sbx.base("apimart"), dir))
    assert.equal(3, status)
    assert.matches("%[auth%]", text)
    status, text = util.run("env -u APIMART_API_KEY bin/pixflow generate --prompt x")
    assert.equal(3, status)
    assert.matches("APIMART_API_KEY", text)
  end)

  it("a moderated generation exits 4", function()
    local status, text = util.run(("APIMART_API_KEY=k bin/pixflow generate --base-url %s "
      .. "--prompt '#moderate' -o %s/m.mp4"):format(sbx.base("apimart"), dir))
    assert.equal(4, status)
    assert.matches("moderat", text)
  end)

  it("providers prints the capability table", function()
    local status, text = util.run("bin/pixflow providers")
    assert.equal(0, status)
    assert.matches("apimart%s+v6%s+pixverse%-v6%s+text,image,transition,fusion,extend%s+1%-15", text)
    for _, p in ipairs({ "pixverse", "quickrouter", "dashscope", "jiekou", "baicai" }) do
      assert.matches("\n" .. p .. " ", text)
    end
    assert.matches("baicai%s+v4%.5%s+PixVerse%-v4%.5%-MR2V%s+fusion%s+5/8 %(<=5 at 1080p%)", text)
    assert.matches("unverified", text)
  end)

  it("sandbox runs the emulator", function()
    local status, text = util.run("bin/pixflow sandbox --help")
    assert.equal(0, status)
    assert.matches("usage: pixflow%-sandbox", text)
  end)
end)

describe("make demo", function()
  it("writes out/demo.mp4 through examples/fusion.lua", function()
    os.remove("out/demo.mp4")
    local status, text = util.run("sh scripts/demo.sh")
    assert.equal(0, status, text)
    assert.matches("wrote out/demo.mp4", text)
    assert.equal("ftyp", util.read("out/demo.mp4"):sub(5, 8))
  end)
end)

describe("examples/every_gateway.lua", function()
  it("makes an MP4 from local images on each of the six gateways", function()
    local sbx = sandbox.start{ task_seconds = 0.5 }
    local dir = util.tmpdir()
    finally(function() sbx.stop(); os.execute("rm -rf " .. dir) end)
    local status, text = util.run(("LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' "
      .. "lua5.4 examples/every_gateway.lua %s %s"):format(sbx.url, dir))
    assert.equal(0, status, text)
    local stats = sbx.stats()
    for _, p in ipairs({ "pixverse", "quickrouter", "apimart", "dashscope", "jiekou", "baicai" }) do
      assert.equal("ftyp", util.read(dir .. "/" .. p .. ".mp4"):sub(5, 8), p)
      assert.equal(1, stats[p].tasks, p)
      assert.equal(p == "jiekou" and 0 or 3, stats[p].uploads, p)
    end
  end)
end)

describe("luarocks make", function()
  it("the rockspec names every C source and every Lua module of the tree", function()
    local spec = util.read("rockspec/pixflow-scm-1.rockspec")
    local _, list = util.run("ls csrc/*.c csrc/adapters/*.c lua/pixflow/*.lua")
    for f in list:gmatch("[^\n]+") do
      assert.truthy(spec:find('"' .. f .. '"', 1, true), f .. " is missing from the rockspec")
    end
  end)

  it("builds offline into a tree from which require 'pixflow' works", function()
    local tmp = util.tmpdir()
    finally(function() os.execute("rm -rf " .. tmp) end)
    -- build from a copy, so that LuaRocks' objects never land in the checkout
    assert.equal(0, (util.run(("mkdir -p %s/src && cp -r csrc lua bin rockspec examples docs %s/src")
      :format(tmp, tmp))))
    local status, text = util.run(("cd %s/src && luarocks --lua-version=5.4 make --deps-mode=none "
      .. "--tree=%s/tree rockspec/pixflow-scm-1.rockspec"):format(tmp, tmp))
    assert.equal(0, status, text)
    status, text = util.run(("cd / && eval \"$(luarocks --lua-version=5.4 path --tree=%s/tree)\" && "
      .. "lua5.4 -e 'local p = require \"pixflow\"; print(p._VERSION, package.searchpath(\"pixflow.core\", package.cpath))' && "
      .. "%s/tree/bin/pixflow version"):format(tmp, tmp))
    assert.equal(0, status, text)
    assert.matches("^%d+%.%d+%.%d+\t" .. tmp:gsub("%p", "%%%0") .. "/tree/lib/lua/5%.4/pixflow/core%.so\npixflow ", text)
  end)
end)
