-- The newcomer's path (issue 12, section 8): the set-up on a machine without make, the command
-- against a sandbox with no key, the advice when no key is set, stopping `pixflow sandbox`, the
-- test targets keeping out of the user's own state, and the README saying what the command prints.
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function write(path, text, mode)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  if mode then assert(os.execute("chmod " .. mode .. " " .. q(path))) end
end

describe("scripts/setup.sh", function()
  -- a machine with a shell and no make: fake apt-get, dpkg-query and id on a PATH of their own;
  -- the fake apt-get "installs" make as a script that records how it was run
  it("installs make and the packages with apt-get when make is missing, then runs the target", function()
    local tmp = util.tmpdir()
    finally(function() os.execute("rm -rf " .. tmp) end)
    local bin = tmp .. "/bin"
    assert(os.execute("mkdir -p " .. bin))
    for _, tool in ipairs({ "sh", "dirname", "grep", "cat", "chmod" }) do
      local _, path = util.run("command -v " .. tool)
      assert(os.execute(("ln -s %s %s/%s"):format(path:gsub("%s+$", ""), bin, tool)))
    end
    write(bin .. "/id", "#!/bin/sh\necho 0\n", "+x")                 -- root
    write(bin .. "/dpkg-query", "#!/bin/sh\nexit 1\n", "+x")         -- nothing installed
    write(bin .. "/apt-get", ([[#!/bin/sh
echo "apt-get $*" >> %s/apt.log
case " $* " in *" install "*)
  printf '#!/bin/sh\necho "make $*" >> %s/make.log\n' > %s/make; chmod +x %s/make ;;
esac
]]):format(tmp, tmp, bin, bin), "+x")
    local status, out = util.run(("env -i PATH=%s /bin/sh scripts/setup.sh test"):format(bin))
    assert.equal(0, status, out)
    local apt = util.read(tmp .. "/apt.log") or ""
    assert.matches("apt%-get update", apt)
    local install = apt:match("apt%-get install ([^\n]*)")
    assert.is_not_nil(install, apt)
    for _, pkg in ipairs({ "make", "gcc", "lua5.4", "liblua5.4-dev", "libcurl4-openssl-dev", "libjansson-dev",
                           "libmicrohttpd-dev", "lua-busted" }) do
      assert.truthy((" " .. install .. " "):find(" " .. pkg .. " ", 1, true), pkg .. " not installed: " .. install)
    end
    assert.equal("make test\n", util.read(tmp .. "/make.log"))
    -- no target: the demo
    os.remove(tmp .. "/make.log")
    status, out = util.run(("env -i PATH=%s /bin/sh scripts/setup.sh"):format(bin))
    assert.equal(0, status, out)
    assert.equal("make demo\n", util.read(tmp .. "/make.log"))
  end)

  it("is the set-up the README names", function()
    local readme = util.read("README.md")
    assert.truthy(readme:find("sh scripts/setup.sh demo", 1, true))
    assert.truthy(readme:find("sh scripts/setup.sh test", 1, true))
  end)
end)

describe("the command with --sandbox", function()
  local sbx, dir, env
  sandbox.around({ task_seconds = 0.3, reset = true }, function(s, d)
    sbx, dir = s, d
    env = ("env -u APIMART_API_KEY -u DASHSCOPE_API_KEY XDG_STATE_HOME=%s/state XDG_CONFIG_HOME=%s/config"):format(d, d)
  end)

  it("needs no key: generate, status and download use a placeholder the sandbox takes", function()
    local status, out = util.run(("%s bin/pixflow generate --sandbox %s --prompt x -o %s/nokey.mp4")
      :format(env, sbx.url, dir))
    assert.equal(0, status, out)
    assert.equal("ftyp", util.read(dir .. "/nokey.mp4"):sub(5, 8))
    local id = out:match("done provider=apimart id=(%S+)")
    assert.is_not_nil(id, out)
    status, out = util.run(("%s bin/pixflow status %s --sandbox %s"):format(env, id, sbx.url))
    assert.equal(0, status, out)
    assert.matches("succeeded", out)
    status, out = util.run(("%s bin/pixflow download %s --sandbox %s -o %s/again.mp4"):format(env, id, sbx.url, dir))
    assert.equal(0, status, out)
    assert.equal("ftyp", util.read(dir .. "/again.mp4"):sub(5, 8))
    status, out = util.run(("%s bin/pixflow generate --sandbox %s --provider dashscope --prompt '@a runs' "
      .. "--ref a=https://e.com/a.png -o %s/ds.mp4"):format(env, sbx.url, dir))
    assert.equal(0, status, out)
    assert.equal(1, sbx.stats().dashscope.tasks)
  end)

  it("needs no key for batch and resume either, on the sandbox's base URLs", function()
    local mf = assert(io.open(dir .. "/nokey.json", "w"))
    mf:write('[{"output": "b1.mp4", "prompt": "one"}, {"output": "b2.mp4", "prompt": "two #seconds=1"}]')
    mf:close()
    local status, out = util.run(("%s bin/pixflow batch %s/nokey.json --sandbox %s --poll 0.2"):format(env, dir, sbx.url))
    assert.equal(0, status, out)
    assert.equal("ftyp", util.read(dir .. "/b2.mp4"):sub(5, 8))
    -- an interrupted generate, resumed with no key set
    local polls = sbx.stats().apimart.polls
    local p = assert(io.popen(("%s bin/pixflow generate --sandbox %s --prompt 'slow #seconds=2' -o %s/r.mp4 >/dev/null 2>&1 & echo $!")
      :format(env, sbx.url, dir)))
    local pid = tonumber(p:read("l"))
    p:close()
    local deadline = require("pixflow").now() + 10
    while sbx.stats().apimart.polls == polls and require("pixflow").now() < deadline do os.execute("sleep 0.05") end
    os.execute(("kill -9 %d; while kill -0 %d 2>/dev/null; do sleep 0.01; done"):format(pid, pid))
    status, out = util.run(("%s bin/pixflow resume --sandbox %s --poll 0.2 --timeout 20"):format(env, sbx.url))
    assert.equal(0, status, out)
    assert.equal("ftyp", (util.read(dir .. "/r.mp4") or ""):sub(5, 8), out)
  end)

  it("still sends the key that is set (a magic key reaches the sandbox)", function()
    local status, out = util.run(("%s APIMART_API_KEY=noquota bin/pixflow generate --sandbox %s --prompt x -o %s/q.mp4")
      :format(env, sbx.url, dir))
    assert.equal(3, status, out)
    assert.matches("quota", out)
  end)

  it("the docs say so", function()
    assert.truthy(util.read("README.md"):find("needs no API key", 1, true))
    assert.truthy(util.read("docs/sandbox.md"):find("needs no API key", 1, true))
  end)
end)

describe("the command with no API key", function()
  it("names the variable to set, not pixflow.new, and sends nothing", function()
    local tmp = util.tmpdir()
    finally(function() os.execute("rm -rf " .. tmp) end)
    for _, c in ipairs({ { "apimart", "APIMART_API_KEY" }, { "dashscope", "DASHSCOPE_API_KEY" },
                         { "pixverse", "PIXVERSE_API_KEY" } }) do
      local status, out = util.run(("env -u %s XDG_STATE_HOME=%s/state bin/pixflow generate --provider %s "
        .. "--prompt x -o %s/x.mp4"):format(c[2], tmp, c[1], tmp))
      assert.equal(3, status, out)
      assert.matches("no API key for " .. c[1], out)
      assert.matches("set " .. c[2] .. " in the environment", out)
      assert.matches("export " .. c[2] .. "=", out)
      assert.is_nil(out:find("pixflow.new", 1, true), out)
      assert.is_nil(out:find("api_key", 1, true), out)
    end
  end)
end)

describe("pixflow sandbox", function()
  -- start `bin/pixflow sandbox` in the background; its pid is the pixflow process's own
  local function start(dir)
    local log = dir .. "/sbx.log"
    local p = assert(io.popen(("exec bin/pixflow sandbox --port 0 --task-seconds 0.3 > %s 2>&1 & echo $!"):format(log)))
    local pid = p:read("l")
    p:close()
    local url
    for _ = 1, 100 do
      url = (util.read(log) or ""):match("listening on (http://127%.0%.0%.1:%d+)")
      if url then break end
      os.execute("sleep 0.1")
    end
    assert.is_not_nil(url, util.read(log))
    return pid, url
  end

  for _, sig in ipairs({ "TERM", "INT" }) do
    it("stops the server it started when it gets SIG" .. sig, function()
      local dir = util.tmpdir()
      local pid, url
      finally(function()
        if url then sandbox.request("POST", url .. "/_sandbox/shutdown", "") end
        if pid then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
        os.execute("rm -rf " .. dir)
      end)
      pid, url = start(dir)
      assert.equal(200, (sandbox.request("GET", url .. "/_sandbox/health")))
      os.execute(("kill -%s %s"):format(sig, pid))
      local gone = false
      for _ = 1, 50 do
        if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then gone = true break end
        os.execute("sleep 0.1")
      end
      assert.is_true(gone, "pixflow sandbox is still running after SIG" .. sig)
      -- (LuaSocket's answer to a refused connection comes back as the code)
      assert.equal("connection refused", (sandbox.request("GET", url .. "/_sandbox/health")),
        "the server outlived pixflow sandbox")
      pid = nil
    end)
  end
end)

describe("make test", function()
  -- the targets' environment, seen by a stand-in for busted: `make test BUSTED=<probe>` with the
  -- user's HOME and XDG variables of a user who has none set
  it("points the journal, the state and the config at build/, never the user's", function()
    local tmp = util.tmpdir()
    finally(function() os.execute("rm -rf " .. tmp) end)
    local probe = ("sh -c 'env > %s/env; bin/pixflow list > %s/list 2>&1' probe"):format(tmp, tmp)
    local status, out = util.run(("env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u XDG_STATE_HOME -u XDG_CONFIG_HOME "
      .. "-u PIXFLOW_CONFIG HOME=%s/home make --no-print-directory test BUSTED=%s"):format(tmp, q(probe)))
    assert.equal(0, status, out)
    local env = util.read(tmp .. "/env") or ""
    local build = util.abspath("build/"):gsub("%p", "%%%0")
    for _, var in ipairs({ "XDG_STATE_HOME", "XDG_CONFIG_HOME", "PIXFLOW_CONFIG" }) do
      assert.matches("\n" .. var .. "=" .. build, "\n" .. env, nil, var .. " is not under build/")
    end
    -- the command's default journal there too, not under HOME
    assert.matches("%(no tasks in " .. build .. "[^\n]*/pixflow/journal%.db%)", util.read(tmp .. "/list"))
    assert.is_false(util.exists(tmp .. "/home/.local"))
  end)
end)

describe("README", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.3 }, function(s, d) sbx, dir = s, d end)

  it("says what the command prints when not on a terminal, as it prints it", function()
    local status = util.run(("(env -u APIMART_API_KEY XDG_STATE_HOME=%s/state bin/pixflow generate --sandbox %s "
      .. "--prompt x -o %s/p.mp4 > %s/out 2> %s/err)"):format(dir, sbx.url, dir, dir, dir))
    assert.equal(0, status)
    local out, err = util.read(dir .. "/out"), util.read(dir .. "/err")
    -- stdout: the file written, alone; stderr: one line per event and one per status
    assert.equal(dir .. "/p.mp4\n", out)
    assert.matches("^submitted provider=apimart output=" .. dir:gsub("%p", "%%%0") .. "/p%.mp4\n", err)
    assert.matches("\napimart %- submitting\napimart task_%w+ queued\n", err)
    assert.matches("\ndone provider=apimart id=task_%w+ path=", err)
    local readme = util.read("README.md")
    assert.is_nil(readme:find("when\nnot on a terminal) it prints one JSON object", 1, true))
    assert.is_nil(readme:find("when not on a terminal) it prints one JSON object", 1, true))
    assert.truthy(readme:find("submitted provider=apimart output=out.mp4", 1, true))
    assert.truthy(readme:find("done provider=apimart id=", 1, true))
  end)

  it("gives a LuaRocks install without root", function()
    local readme = util.read("README.md")
    assert.truthy(readme:find("luarocks --lua-version=5.4 --local make rockspec/pixflow-scm-1.rockspec", 1, true))
    assert.truthy(readme:find('eval "$(luarocks --lua-version=5.4 path)"', 1, true))
  end)
end)
