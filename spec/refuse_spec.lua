-- Issue 12, section 3: what cannot be honoured is refused before anything is spent. The real
-- `bin/pixflow` runs against the sandbox (HOME and XDG_STATE_HOME in a temporary directory), and
-- /_sandbox/stats proves that nothing was sent: no upload, no submit, no poll, no download.
local pixflow = require "pixflow"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local function total(stats)
  local n = 0
  for _, s in pairs(stats) do n = n + s.submits + s.uploads + s.polls + s.downloads end
  return n
end

describe("the command refuses before spending", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.2, reset = true }, function(s, d) sbx, dir = s, d end)

  -- bin/pixflow with the key (APIMART_API_KEY, placed between single quotes, so that CR and LF
  -- reach the variable as they are), the user's state in dir; status and output (both streams)
  local function run(args, key)
    return util.run(("env -u XDG_CONFIG_HOME -u PIXFLOW_CONFIG HOME=%s XDG_STATE_HOME=%s/state APIMART_API_KEY='%s' "
      .. "timeout 30 bin/pixflow %s"):format(dir, dir, key or "k", args))
  end
  local function nothing_sent() assert.equal(0, total(sbx.stats()), "something reached the gateway") end

  describe("unknown options", function()
    it("--aspect-ratio is refused with 'did you mean --aspect' (exit 1), nothing billed", function()
      local status, out = run(("generate --sandbox %s --prompt x --aspect-ratio 9:16 -o %s/a.mp4"):format(sbx.url, dir))
      assert.equal(1, status, out)
      assert.matches("unknown option \"--aspect-ratio\"; did you mean --aspect?", out, 1, true)
      assert.is_false(util.exists(dir .. "/a.mp4"))
      nothing_sent()
    end)

    it("--promt gets 'did you mean --prompt'", function()
      local status, out = run(("generate --sandbox %s --promt x -o %s/p.mp4"):format(sbx.url, dir))
      assert.equal(1, status, out)
      assert.matches("did you mean --prompt?", out, 1, true)
      nothing_sent()
    end)

    it("--bogus 3 is an error, not ignored", function()
      local status, out = run(("generate --sandbox %s --prompt x --bogus 3 -o %s/b.mp4"):format(sbx.url, dir))
      assert.equal(1, status, out)
      assert.matches("unknown option \"--bogus\"", out, 1, true)
      nothing_sent()
    end)

    it("each command takes its own options: list refuses --concurrency (batch's)", function()
      local status, out = run("list --concurrency 2")
      assert.equal(1, status, out)
      assert.matches("unknown option \"--concurrency\" (it is an option of pixflow batch)", out, 1, true)
    end)

    it("a switch given a value, a value given twice and a stray argument are usage errors", function()
      for _, args in ipairs({ "--prompt x --audio=false", "--prompt x --aspect 9:16 --aspect 16:9",
                              "--prompt a b", "--prompt x --timeout 10m" }) do
        local status, out = run(("generate --sandbox %s %s -o %s/s.mp4"):format(sbx.url, args, dir))
        assert.equal(1, status, args .. ": " .. out)
      end
      nothing_sent()
    end)

    it("every option a command's --help lists is one it takes", function()
      for _, cmd in ipairs({ "generate", "status", "download", "cancel", "list", "resume", "batch" }) do
        local _, help = run(cmd .. " --help")
        for name in help:gmatch("%-%-([%w-]+)") do
          local _, out = run(("%s --%s --help"):format(cmd, name))
          assert.is_nil(out:find("unknown option", 1, true), cmd .. " --" .. name .. ": " .. out)
        end
      end
    end)

    it("--provider nosuch is a usage error (exit 1) with the known ones, no traceback", function()
      local status, out = run(("generate --sandbox %s --provider nosuch --prompt x"):format(sbx.url))
      assert.equal(1, status, out)
      assert.matches("unknown provider \"nosuch\"", out, 1, true)
      assert.matches("known: apimart", out, 1, true)
      assert.is_nil(out:find("%.lua:%d+:"), out)
      assert.is_nil(out:find("bad argument", 1, true), out)
      status, out = run(("generate --sandbox %s --model v9 --prompt x"):format(sbx.url))
      assert.equal(1, status, out)
      assert.is_nil(out:find("%.lua:%d+:"), out)
      nothing_sent()
    end)
  end)

  describe("the output path", function()
    it("a missing parent directory is made, and the probe leaves nothing behind", function()
      local out = dir .. "/new/sub/clip.mp4"
      local status, text = run(("generate --sandbox %s --prompt x -o %s"):format(sbx.url, out))
      assert.equal(0, status, text)
      assert.equal("ftyp", util.read(out):sub(5, 8))
      local _, listing = util.run("ls -A " .. dir .. "/new/sub")
      assert.equal("clip.mp4\n", listing)
    end)

    local function refused(args, pattern)
      local status, out = run(("generate --sandbox %s --prompt x %s"):format(sbx.url, args))
      assert.equal(2, status, out)
      assert.matches("[invalid]", out, 1, true)
      assert.matches("output: ", out, 1, true)
      assert.matches(pattern, out, 1, true)
      assert.matches("nothing was sent", out, 1, true)
      nothing_sent()
      return out
    end

    it("a path that is a directory is refused (invalid, exit 2), nothing sent", function()
      refused("-o " .. dir, "is a directory: give a file path inside it")
    end)

    it("a file name over 255 bytes is refused; so is one whose .part name would be", function()
      refused(("-o %s/%s.mp4"):format(dir, ("n"):rep(296)), "has a file name of 300 bytes; at most 250 are allowed")
      refused(("-o %s/%s.mp4"):format(dir, ("n"):rep(248)), "has a file name of 252 bytes; at most 250 are allowed")
    end)

    it("a path over PATH_MAX is refused", function()
      local long = dir .. ("/" .. ("d"):rep(200)):rep(21) .. "/out.mp4"
      refused("-o " .. long, "as an absolute path; at most 4090 are allowed (PATH_MAX 4096")
      assert.is_false(util.exists(dir .. "/" .. ("d"):rep(200)))
    end)

    it("a directory on a read-only file system is refused", function()
      local ro = dir .. "/ro"
      os.execute("mkdir -p " .. ro)
      -- root may write into a chmod'd directory: only a read-only mount is really read-only
      if not os.execute(("mount -t tmpfs -o ro,size=1m tmpfs %s 2>/dev/null"):format(ro)) then
        pending("mount is not permitted here (it needs root): the read-only directory case did not run")
        return
      end
      finally(function() os.execute("umount " .. ro) end)
      refused(("-o %s/out.mp4"):format(ro), "which is on a read-only file system")
      refused(("-o %s/deeper/out.mp4"):format(ro), "cannot create the directory " .. ro .. "/deeper: Read-only file system")
    end)

    it("the library: a path that names no file is refused by submit and download, as errors", function()
      local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                    poll = { initial = 0.05, interval = 0.05 } })
      local t, err = c:submit({ prompt = "x" }, { output = dir .. "/" })
      assert.is_nil(t)
      assert.equal("invalid", err.kind)
      assert.equal("output", err.problems[1].field)
      assert.equal(dir .. "/", err.problems[1].value)
      t = assert(c:submit{ prompt = "x" })
      assert(t:wait{ timeout = 10 })
      local path, derr = t:download(dir .. "/..", { timeout = 10 })
      assert.is_nil(path)
      assert.equal("invalid", derr.kind)
      assert.matches("the video is not lost", tostring(derr), 1, true)
      c:close()
    end)

    -- what needs the disk is asked on the worker: submit returns at once, and the task fails in
    -- a pump before anything is sent (a download fails, and the video stays to be fetched)
    it("the library: a directory as output fails the task on the worker, not charged, nothing sent", function()
      local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                    poll = { initial = 0.05, interval = 0.05 } })
      local t = assert(c:submit({ prompt = "x" }, { output = dir }))
      local ok, err = t:wait{ timeout = 10 }
      assert.is_nil(ok)
      assert.equal("failed", t.status)
      assert.equal("invalid", err.kind)
      assert.equal("bad_output", err.code)
      assert.is_false(err.charged)
      assert.matches('output: "' .. dir .. '" is a directory: give a file path inside it', err.message, 1, true)
      assert.matches("nothing was sent, so nothing was charged", err.message, 1, true)
      nothing_sent()
      t = assert(c:submit{ prompt = "x" })
      assert(t:wait{ timeout = 10 })
      local path, derr = t:download(dir, { timeout = 10 })
      assert.is_nil(path)
      assert.equal("invalid", derr.kind)
      assert.equal("bad_output", derr.code)
      assert.matches("cannot save the video: output: ", derr.message, 1, true)
      assert.matches("the video is not lost", tostring(derr), 1, true)
      -- the video was not lost: a good path takes it
      assert.equal(dir .. "/fine.mp4", (t:download(dir .. "/fine.mp4", { timeout = 10 })))
      assert.equal("ftyp", util.read(dir .. "/fine.mp4"):sub(5, 8))
      c:close()
    end)

    it("absolute(): relative paths, '.' and '..', and directories behind symbolic links", function()
      local guard = require "pixflow.guard"
      local cwd = assert(io.popen("pwd -P")):read("l")
      assert.equal(cwd .. "/out.mp4", guard.absolute("out.mp4"))
      assert.equal(cwd .. "/b/out.mp4", guard.absolute("./a/../b//./out.mp4"))
      os.execute(("mkdir -p %s/real/x && ln -sfn %s/real %s/link"):format(dir, dir, dir))
      local real = assert(require("pixflow.core")._fs.realpath(dir))
      assert.equal(real .. "/real/out.mp4", guard.absolute(dir .. "/link/out.mp4"))
      assert.equal(real .. "/out.mp4", guard.absolute(dir .. "/link/x/../../out.mp4"))
      assert.equal("/", guard.absolute("/.."))
    end)
  end)

  describe("inputs that cannot be sent faithfully", function()
    local function client()
      return assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart") })
    end

    it("a NUL byte in the prompt or the negative prompt is refused, naming the field and the offset", function()
      local c = assert(pixflow.new{ provider = "pixverse", api_key = "k", base_url = sbx.base("pixverse") })
      local t, err = c:submit{ prompt = "a cat\0 and the rest the gateway would never see" }
      assert.is_nil(t)
      assert.equal("invalid", err.kind)
      assert.equal("prompt", err.problems[1].field)
      assert.matches("prompt: holds a NUL byte at byte offset 5", tostring(err), 1, true)
      t, err = c:submit{ prompt = "a cat", negative_prompt = "blur\0" }
      assert.is_nil(t)
      assert.equal("negative_prompt", err.problems[1].field)
      assert.matches("byte offset 4", tostring(err), 1, true)
      c:close()
      nothing_sent()
    end)

    it("a reference image that is a FIFO is refused at once, never opened (it hung submit)", function()
      local fifo = dir .. "/hero.png"
      assert(os.execute("mkfifo " .. fifo))
      finally(function() os.remove(fifo) end)
      local status, out = run(("generate --sandbox %s --prompt '@hero runs' --ref hero=%s -o %s/f.mp4"):format(
        sbx.url, fifo, dir))
      assert.equal(2, status, out)
      assert.matches("is a FIFO (named pipe), not a regular file", out, 1, true)
      nothing_sent()
    end)

    it("a directory or a device as an image is refused for what it is", function()
      os.execute(("mkdir -p %s/frames.png && ln -sf /dev/zero %s/zero.png"):format(dir, dir))
      local status, out = run(("generate --sandbox %s --prompt '@a x' --ref a=%s/frames.png -o %s/d.mp4"):format(
        sbx.url, dir, dir))
      assert.equal(2, status, out)
      assert.matches("is a directory, not a regular file", out, 1, true)
      assert.is_nil(out:find("9223372036854775807", 1, true))
      status, out = run(("generate --sandbox %s --prompt '@a x' --ref a=%s/zero.png -o %s/z.mp4"):format(
        sbx.url, dir, dir))
      assert.equal(2, status, out)
      assert.matches("is a character device, not a regular file", out, 1, true)
      nothing_sent()
    end)

    it("the C core hashes only regular files, opened without blocking", function()
      -- submit does not look at the file (a stat can wait on the disk); the worker does, and
      -- must neither open a FIFO nor block on one (a child process, so that a hang shows as a
      -- timeout rather than stopping the suite)
      local script = ([[
        package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
        package.cpath = "build/?.so;" .. package.cpath
        local pixflow = require "pixflow"
        local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = %q })
        os.remove(%q)
        assert(os.execute("mkfifo " .. %q))
        local t = assert(c:submit{ prompt = "@a x", references = { { name = "a", image = %q } } })
        local ok, err = t:wait{ timeout = 5 }
        io.write(tostring(ok), " ", tostring(err and err.kind), " ", tostring(err and err.message))
      ]]):format(sbx.base("apimart"), dir .. "/later.png", dir .. "/later.png", dir .. "/later.png")
      os.execute(("cp spec/fixtures/images/hero.png %s/later.png"):format(dir))
      local f = assert(io.open(dir .. "/core.lua", "w"))
      f:write(script)
      f:close()
      local status, out = util.run(("timeout 10 lua5.4 %s/core.lua"):format(dir))
      os.remove(dir .. "/later.png")
      assert.equal(0, status, "the core blocked on a FIFO: " .. out)
      assert.matches("nil invalid references%[1%]%.image: \".*later.png\" is a FIFO %(named pipe%), not a regular file", out)
      nothing_sent()
    end)

    it("an API key with CR LF is refused, naming the variable, never the key; nothing is injected", function()
      local status, out = run(("generate --sandbox %s --prompt x -o %s/k.mp4"):format(sbx.url, dir),
                              "sk-abc\r\nX-Injected: yes")
      assert.equal(3, status, out)
      assert.matches("the API key in APIMART_API_KEY holds a carriage return (CR) at byte 7", out, 1, true)
      assert.is_nil(out:find("sk-abc", 1, true), out)
      assert.is_nil(out:find("Injected", 1, true), out)
      nothing_sent()
    end)

    it("a key with a trailing newline or another control character is refused the same way", function()
      for key, what in pairs({ ["sk-abc\n"] = "a line feed (LF) at byte 7 of 7", ["sk\27abc"] = "a control character (0x1B)",
                               ["sk-abc "] = "ends with a space" }) do
        local status, out = run(("generate --sandbox %s --prompt x -o %s/k.mp4"):format(sbx.url, dir), key)
        assert.equal(3, status, out)
        assert.matches(what, out, 1, true)
        assert.is_nil(out:find("sk%-abc"), out)
      end
      nothing_sent()
    end)

    it("a key longer than pixflow sends gets a clear error, not [nomem]", function()
      local status, out = run(("generate --sandbox %s --prompt x -o %s/k.mp4"):format(sbx.url, dir), ("k"):rep(2000))
      assert.equal(3, status, out)
      assert.matches("is 2000 bytes; pixflow sends keys of at most 1000 bytes", out, 1, true)
      assert.is_nil(out:find("nomem", 1, true), out)
      local c, err = pixflow.new{ provider = "apimart", api_key = ("k"):rep(8 * 1024 * 1024 + 1) }
      assert.is_nil(c)
      assert.equal("auth", err.kind)
      assert.equal("api_key", err.field)
      assert.matches("the API key in field 'api_key' is 8388609 bytes", tostring(err), 1, true)
      nothing_sent()
    end)

    it("the C core never puts CR or LF into a header, whatever key it is handed", function()
      local A = require("pixflow.core")._adapters.apimart
      local out, err = A.encode_submit({ mode = "text", model = "pixverse-v6", prompt = "x" },
        { provider = "apimart", base_url = "https://api.apimart.ai", api_key = "sk\r\nX-Injected: yes" })
      assert.is_nil(out, out and table.concat(out.headers, " | "))
      assert.truthy(err)
      out = assert(A.encode_submit({ mode = "text", model = "pixverse-v6", prompt = "x" },
        { provider = "apimart", base_url = "https://api.apimart.ai", api_key = "sk\tok" }))
      assert.equal("Authorization: Bearer sk\tok", out.headers[1])
    end)
  end)
end)
