-- The command-line tool, the demo, and the LuaRocks build: what a newcomer runs first.
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

describe("bin/pixflow", function()
  local sbx, dir, state
  sandbox.around({ task_seconds = 0.3 }, function(s, d)
    sbx, dir = s, d
    -- every run below keeps its journal here, not in the user's ~/.local/state
    state = ("XDG_STATE_HOME=%s/state XDG_CONFIG_HOME=%s/config"):format(d, d)
  end)

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
    local status, text = util.run(("%s APIMART_API_KEY=k bin/pixflow generate --base-url %s "
      .. "--prompt '@hero walks into @city' --ref hero=https://e.com/h.png "
      .. "--ref city=https://e.com/c.jpg:background --duration 5 -o %s"):format(state, sbx.base("apimart"), out))
    assert.equal(0, status, text)
    assert.equal("ftyp", util.read(out):sub(5, 8))
    assert.matches(out, text, 1, true)
  end)

  it("generate refuses an invalid request before sending it, exit 2", function()
    sbx.reset()
    local status, text = util.run(("%s APIMART_API_KEY=k bin/pixflow generate --base-url %s "
      .. "--prompt x --duration 20 --aspect 5:4"):format(state, sbx.base("apimart")))
    assert.equal(2, status)
    assert.matches("duration: 20 is not allowed", text)
    assert.matches("aspect_ratio", text)
    assert.equal(0, sbx.stats().apimart.submits)
  end)

  it("generate with a wrong key exits 3 and never prints the key", function()
    local status, text = util.run(("%s APIMART_API_KEY=invalid bin/pixflow generate --base-url %s "
      .. "--prompt x -o %s/k.mp4"):format(state, sbx.base("apimart"), dir))
    assert.equal(3, status)
    assert.matches("%[auth%]", text)
    status, text = util.run(("env -u APIMART_API_KEY %s bin/pixflow generate --prompt x"):format(state))
    assert.equal(3, status)
    assert.matches("APIMART_API_KEY", text)
  end)

  it("a moderated generation exits 4", function()
    local status, text = util.run(("%s APIMART_API_KEY=k bin/pixflow generate --base-url %s "
      .. "--prompt '#moderate' -o %s/m.mp4"):format(state, sbx.base("apimart"), dir))
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
      .. "lua5.4 examples/every_gateway.lua %s %s/new"):format(sbx.url, dir))   -- a directory it creates
    assert.equal(0, status, text)
    local stats = sbx.stats()
    for _, p in ipairs({ "pixverse", "quickrouter", "apimart", "dashscope", "jiekou", "baicai" }) do
      assert.equal("ftyp", util.read(dir .. "/new/" .. p .. ".mp4"):sub(5, 8), p)
      assert.equal(1, stats[p].tasks, p)
      assert.equal(p == "jiekou" and 0 or 3, stats[p].uploads, p)
    end
  end)
end)

describe("luarocks make", function()
  it("the rockspec names every C source and every Lua module of the tree", function()
    local spec = util.read("rockspec/pixflow-scm-1.rockspec")
    local _, list = util.run("ls csrc/engine/*.c csrc/adapters/*.c csrc/lua/*.c sandbox/*.c lua/pixflow/*.lua")
    for f in list:gmatch("[^\n]+") do
      assert.truthy(spec:find('"' .. f .. '"', 1, true), f .. " is missing from the rockspec")
    end
  end)

  -- the README's non-root install, with HOME in a temporary directory: `luarocks --local make`,
  -- `eval "$(luarocks path)"`, then the installed command, its sandbox included, from outside the
  -- checkout
  it("installs with --local into HOME; the installed pixflow and pixflow sandbox work from elsewhere", function()
    local tmp = util.tmpdir()
    local url, pid
    finally(function()
      if url then sandbox.request("POST", url .. "/_sandbox/shutdown", "") end
      if pid then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
      os.execute("rm -rf " .. tmp)
    end)
    -- build from a copy, so that LuaRocks' objects never land in the checkout
    assert.equal(0, (util.run(("mkdir -p %s/src/spec/fixtures %s/home && cp -r csrc lua bin rockspec sandbox "
      .. "examples docs %s/src && cp spec/fixtures/clip.mp4 %s/src/spec/fixtures/"):format(tmp, tmp, tmp, tmp))))
    local home = ("HOME=%s/home"):format(tmp)
    local status, text = util.run(("cd %s/src && %s luarocks --lua-version=5.4 --local make --deps-mode=none "
      .. "rockspec/pixflow-scm-1.rockspec"):format(tmp, home))
    assert.equal(0, status, text)
    local env = ("cd / && export %s XDG_STATE_HOME=%s/state XDG_CONFIG_HOME=%s/config && "
      .. "eval \"$(luarocks --lua-version=5.4 path)\" && "):format(home, tmp, tmp)
    status, text = util.run(env .. "lua5.4 -e 'local p = require \"pixflow\"; print(p._VERSION, "
      .. "package.searchpath(\"pixflow.core\", package.cpath))' && command -v pixflow && pixflow version")
    assert.equal(0, status, text)
    local lib = tmp:gsub("%p", "%%%0") .. "/home/%.luarocks/lib/lua/5%.4/"
    assert.matches("^%d+%.%d+%.%d+\t" .. lib .. "pixflow/core%.so\n", text)
    assert.matches("\n" .. tmp:gsub("%p", "%%%0") .. "/home/%.luarocks/bin/pixflow\npixflow ", text)
    -- the installed sandbox: it serves, a generation against it needs no key, SIGTERM stops it
    local p = assert(io.popen(("sh -c '%s exec pixflow sandbox --port 0 --task-seconds 0.3' > %s/sbx.log 2>&1 & echo $!")
      :format(env:gsub("'", "'\\''"), tmp)))
    pid = p:read("l")
    p:close()
    for _ = 1, 100 do
      url = (util.read(tmp .. "/sbx.log") or ""):match("listening on (http://127%.0%.0%.1:%d+)")
      if url then break end
      os.execute("sleep 0.1")
    end
    assert.is_not_nil(url, util.read(tmp .. "/sbx.log"))
    assert.equal(200, (sandbox.request("GET", url .. "/_sandbox/health")))
    status, text = util.run(env .. ("env -u APIMART_API_KEY pixflow generate --sandbox %s --prompt x -o %s/i.mp4")
      :format(url, tmp))
    assert.equal(0, status, text)
    assert.equal("ftyp", util.read(tmp .. "/i.mp4"):sub(5, 8))
    os.execute("kill -TERM " .. pid)
    local gone = false
    for _ = 1, 50 do
      if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then gone = true break end
      os.execute("sleep 0.1")
    end
    assert.is_true(gone, "pixflow sandbox outlived SIGTERM")
    -- (LuaSocket's answer to a refused connection comes back as the code)
    assert.equal("connection refused", (sandbox.request("GET", url .. "/_sandbox/health")),
      "the server outlived pixflow sandbox")
    url, pid = nil, nil
  end)
end)
