-- exit_spec: a process that ends while its worker is busy ends cleanly: no crash, no hang.
-- OpenSSL's cleanup at exit (atexit, unless told not to) freed its state under a worker hashing
-- an image: os.exit(0) a moment after such a submit crashed 2 runs in 5 (SIGSEGV, or glibc's
-- "unaligned fastbin chunk"), and under AddressSanitizer a worker's thread-exit destructor,
-- after pixflow.flush, was a double free. Each case runs the child many times: each run is a
-- race, and the old code lost it often enough that 24 runs never all passed.
local util = require("spec.support.util")

describe("a process exiting while its worker works", function()
  local dir, image
  setup(function()
    dir = util.tmpdir()
    image = dir .. "/hero.png"
    local f = assert(io.open(image, "wb"))
    f:write("\137PNG\r\n\26\n", ("\0"):rep(24))
    f:close()
    -- 20 MB, the largest image a gateway takes: its hash is 30-60 ms on the worker
    assert(os.execute(("head -c %d /dev/urandom >> %s/hero.png"):format(20 * 1024 * 1024 - 32, dir)))
  end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  local function runs(how, preload)
    local bad = {}
    for i = 1, 24 do
      local seconds = ({ 0, 0.001, 0.003, 0.01 })[i % 4 + 1]
      local env = preload and ("LD_PRELOAD=\"${LD_PRELOAD:+$LD_PRELOAD:}%s\" "):format(preload) or ""
      local status, out = util.run(("%stimeout 20 lua5.4 spec/support/exit_child.lua %s %s %s"):format(
        env, image, seconds, how))
      if status ~= 0 or not out:match("^exiting\n$") then
        bad[#bad + 1] = ("run %d (%.3f s): status %s, %s"):format(i, seconds, status, out:sub(1, 200))
      end
    end
    assert.same({}, bad)
  end

  it("os.exit(0) with the client open, mid-hash", function() runs("exit") end)
  it("os.exit(0) right after close, mid-hash", function() runs("close") end)
  it("the script's end right after close (the Lua state closes, pixflow waits for its worker)",
     function() runs("end") end)

  -- a host that initialised OpenSSL before pixflow (it uses OpenSSL itself): OpenSSL's cleanup at
  -- exit stays registered; pixflow's own at-exit handler, registered after it and so run before
  -- it, lets no worker start anything more and waits for what runs #linux
  describe("OpenSSL initialised first, by the host", function()
    local so
    setup(function()
      so = dir .. "/sslfirst.so"
      local status, out = util.run(("cc -shared -fPIC -O1 -o %s spec/support/sslfirst.c -lcrypto"):format(so))
      assert.equal(0, status, out)
    end)
    it("os.exit(0) with the client open, mid-hash #linux", function() runs("exit", so) end)
    it("os.exit(0) right after close, mid-hash #linux", function() runs("close", so) end)
    it("the script's end right after close #linux", function() runs("end", so) end)
  end)
end)
