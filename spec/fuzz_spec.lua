-- The fuzz build (issue 12, section 7): every target builds and runs, and a change between engine
-- files (a new file, a new call from an adapter into another part of the engine) needs no edit of
-- the fuzz build. Needs clang and libFuzzer: `make fuzz-smoke` (CI runs it before `make test`)
-- installs them; without clang these specs are pending, not passed.
-- #noasan: clang under make test-asan's preloaded ASan runtime proves nothing more.
local util = require "spec.support.util"

local function have_clang()
  return os.execute("command -v clang >/dev/null 2>&1") == true
end

-- what the build should find: one target per adapter and one per other fuzz/*_fuzz.c
local function expected_targets()
  local _, adapters = util.run("ls csrc/adapters/*.c")
  local _, others = util.run("ls fuzz/*_fuzz.c")
  local t = {}
  for f in adapters:gmatch("[^\n]+") do
    local name = f:match("([^/]+)%.c$")
    if name ~= "common" and name ~= "proto" and name ~= "registry" then t[#t + 1] = name end
  end
  for f in others:gmatch("[^\n]+") do
    local name = f:match("([^/]+)_fuzz%.c$")
    if name ~= "adapter" then t[#t + 1] = name end
  end
  return t
end

describe("make fuzz-smoke #noasan", function()
  it("builds one target per adapter and per fuzz/*_fuzz.c and runs each with no crash", function()
    if not have_clang() then return pending("clang is not installed (make fuzz-smoke installs it)") end
    local targets = expected_targets()
    assert.is_true(#targets >= 6)
    local status, out = util.run("env -u MAKEFLAGS -u MAKELEVEL make --no-print-directory fuzz-smoke FUZZ_SMOKE_SECONDS=1")
    assert.equal(0, status, out)
    for _, t in ipairs(targets) do
      assert.matches("\nfuzz: " .. t .. " ok: %d+ runs", "\n" .. out, nil, t .. " did not run")
    end
    assert.matches("\n" .. #targets .. " passed, 0 failed\n", "\n" .. out)
  end)

  it("needs no edit when an adapter starts to call a new engine file that calls the rest of the engine", function()
    if not have_clang() then return pending("clang is not installed (make fuzz-smoke installs it)") end
    local tmp = util.tmpdir()
    finally(function() os.execute("rm -rf " .. tmp) end)
    assert.equal(0, (util.run(("cp -r Makefile csrc fuzz scripts %s/"):format(tmp))))
    -- a new engine file, csrc/engine/zz_probe.c, reaching into the client's clock (as retry.c
    -- did), and a call to it from the apimart adapter
    local f = assert(io.open(tmp .. "/csrc/engine/zz_probe.c", "w"))
    f:write([[
/* zz_probe.c: a stand-in for a new engine file (spec/fuzz_spec.lua). */
#include <stddef.h>
#include "internal.h"
double pf_zz_probe(pf_client *c);
double pf_zz_probe(pf_client *c) { return c ? pf_client_rand(c) : 0; }
]])
    f:close()
    f = assert(io.open(tmp .. "/csrc/adapters/apimart.c", "a"))
    f:write("\ndouble pf_zz_probe(void *c);\ndouble pf_zz_caller(void *c);\ndouble pf_zz_caller(void *c) { return pf_zz_probe(c); }\n")
    f:close()
    local status, out = util.run(("cd %s && env -u MAKEFLAGS -u MAKELEVEL make --no-print-directory build/fuzz/apimart_fuzz && "
      .. "build/fuzz/apimart_fuzz -runs=2000 fuzz/corpus/apimart"):format(tmp))
    assert.equal(0, status, out)
    assert.matches("Done 2000 runs", out)
    -- the probe and what it reaches were linked in, and nothing had to name them
    local _, syms = util.run(("nm %s/build/fuzz/apimart_fuzz"):format(tmp))
    assert.matches(" T pf_zz_probe\n", syms)
    assert.matches(" T pf_client_rand\n", syms)
  end)
end)
