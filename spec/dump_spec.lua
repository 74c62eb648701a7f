-- Core dumps: the API key is not in one. pixflow keeps its copy in its own pages, marked
-- MADV_DONTDUMP and wiped on close, and the header lines that carry it live in such pages while
-- their request does (docs/ARCHITECTURE.md, "Secrets"). A child process (spec/support/dump_child.lua)
-- is dumped with gdb's gcore twice: idle after a task, and with a request in flight.
--
-- The key also exists as the Lua string it was given as; Lua frees that string without wiping
-- it, and that copy is the caller's, not pixflow's. So the child runs with glibc's malloc perturb
-- (freed memory is overwritten; the per-thread cache is off, as it skips that), and the spec
-- sees what is live and what pixflow's own code left.
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local A, B = "sk-live-DUMP7e41a9c0-", "5b2f88d3SECRETc4e1"
local KEY = A .. B

-- Can this machine take a core dump of a process we start? (gdb present, ptrace allowed)
local function can_dump()
  if (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) then
    -- the child would carry AddressSanitizer's shadow memory (terabytes mapped): no dump
    return false, "under AddressSanitizer (make test-asan); make test checks it"
  end
  local status, out = util.run("command -v gcore && command -v gdb")
  if status ~= 0 then return false, "gcore (gdb) is not installed" end
  local dir = util.tmpdir()
  -- a child of ours that says its own pid (and is killed by it when the probe is done)
  local probe = assert(io.popen("exec sh -c 'echo $$; exec sleep 20'", "r"))
  local pid = tonumber(probe:read("l"))
  status, out = util.run(("env -u LD_PRELOAD timeout 60 gcore -o %s/probe %d"):format(dir, pid))
  local ok = status == 0 and util.exists(("%s/probe.%d"):format(dir, pid))
  os.execute("kill " .. pid .. " 2>/dev/null")
  probe:close()
  os.execute("rm -rf " .. dir)
  return ok, not ok and ("gcore could not dump a child process (ptrace not allowed?): " .. out:sub(1, 200))
end

describe("core dumps", function()
  local ok, why = can_dump()
  if not ok then
    pending("core dumps are not checked on this machine: " .. tostring(why))
    return
  end
  local sbx, dir
  sandbox.around({ task_seconds = 0.2, reset = true }, function(s, d) sbx, dir = s, d end)

  it("hold no copy of the API key, idle or with a request in flight", function()
    local cmd = ("cd %s && GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.perturb=165 "
      .. "LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' exec lua5.4 spec/support/dump_child.lua %s %s %s %s")
      :format(util.abspath("."), sbx.url, A, B, dir)
    local child = assert(io.popen(cmd, "r"))
    local pid = assert(tonumber(child:read("l")), "the child did not start")
    finally(function()
      -- however the spec ended, let the child go (it also stops by itself: 60 s at most)
      for _, go in ipairs{ "go1", "go2" } do
        local f = io.open(dir .. "/" .. go, "w")
        if f then f:close() end
      end
      sbx.faults{}
      child:close()
    end)
    local marker = "live-" .. A:sub(-6) .. "-" .. B:sub(1, 6) .. "-marker"
    local function dump(word, go)
      assert.equal(word, child:read("l"))
      local path = ("%s/core-%s"):format(dir, word)
      local status, out = util.run(("env -u LD_PRELOAD timeout 120 gcore -o %s %d"):format(path, pid))
      assert.equal(0, status, out)
      local core = assert(util.read(("%s.%d"):format(path, pid)))
      os.remove(("%s.%d"):format(path, pid))
      assert.truthy(core:find(marker, 1, true), "the dump does not even show what is live")
      assert.is_nil(core:find(KEY, 1, true), "the key is in the core dump (" .. word .. ")")
      assert.is_nil(core:find("Bearer " .. A, 1, true), "a header line is in the core dump (" .. word .. ")")
      assert(io.open(dir .. "/" .. go, "w")):close()
    end
    dump("idle", "go1")
    sbx.faults{ { gateway = "apimart", route = "status", action = "stall", seconds = 5, fraction = 0 } }
    dump("in_flight", "go2")
  end)
end)
