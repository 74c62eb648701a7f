-- The engine as a layered C library (issue 13): no Lua below the binding, no cycle of calls
-- between the C files, the binding a small part of the C code, and a C program that makes a
-- video through the engine's C interface with no Lua at all. Read from the objects `make`
-- compiled one file at a time (build/obj/csrc/...), so what is checked is what the compiler
-- produced, not what the source seems to say.
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local function lines_of(cmd)
  local p = assert(io.popen(cmd .. " 2>/dev/null"))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

-- every C source of the core, and its object
local function sources()
  local list = {}
  for _, f in ipairs(lines_of("ls csrc/engine/*.c csrc/adapters/*.c csrc/lua/*.c")) do
    list[#list + 1] = { src = f, obj = "build/obj/" .. f:gsub("%.c$", ".o"),
                        binding = f:find("^csrc/lua/") ~= nil }
  end
  return list
end

local function symbols(obj, flags)
  local set = {}
  for _, l in ipairs(lines_of(("nm %s %s"):format(flags, obj))) do
    local kind, name = l:match("^%s*%x*%s+(%a)%s+(%S+)$")
    if name then set[name] = kind end
  end
  return set
end

describe("the engine's layers", function()
  it("no file of csrc/engine or csrc/adapters calls Lua (their objects need no lua_ or luaL_ symbol)", function()
    local offenders, n = {}, 0
    for _, f in ipairs(sources()) do
      if not f.binding then
        n = n + 1
        assert.is_true(util.exists(f.obj), f.obj .. " was not built (make all)")
        for name in pairs(symbols(f.obj, "-u")) do
          if name:find("^lua") then offenders[#offenders + 1] = f.src .. ": " .. name end
        end
      end
    end
    assert.is_true(n >= 20, "the engine's files were not found")
    assert.same({}, offenders)
  end)

  it("the binding reaches the engine through its interfaces only, never its records (internal.h)", function()
    local offenders = {}
    for _, f in ipairs(lines_of("ls csrc/lua/*")) do
      local text = util.read(f)
      if text:find('#include%s+"internal%.h"') or text:find('#include%s+"[^"]*/internal%.h"') then
        offenders[#offenders + 1] = f
      end
    end
    assert.same({}, offenders)
  end)

  it("the files that call Lua hold at most a quarter of the C lines", function()
    local lua_lines, all = 0, 0
    for _, f in ipairs(lines_of("ls csrc/engine/* csrc/adapters/* csrc/lua/*")) do
      local n = #lines_of("cat " .. f)
      all = all + n
      local calls = f:find("^csrc/lua/") ~= nil
      if f:find("%.c$") and not calls then
        for name in pairs(symbols("build/obj/" .. f:gsub("%.c$", ".o"), "-u")) do
          if name:find("^lua") then calls = true end
        end
      end
      if calls then lua_lines = lua_lines + n end
    end
    assert.is_true(lua_lines / all <= 0.25, ("%d of %d lines (%.0f%%) call Lua"):format(lua_lines, all,
      100 * lua_lines / all))
  end)

  it("the C files form no cycle of calls", function()
    local files = sources()
    local owner = {}                      -- a defined function or object -> its file
    for _, f in ipairs(files) do
      for name, kind in pairs(symbols(f.obj, "--defined-only")) do
        if kind:find("[TDBR]") then owner[name] = f.src end
      end
    end
    local edges = {}
    for _, f in ipairs(files) do
      edges[f.src] = {}
      for name in pairs(symbols(f.obj, "-u")) do
        local to = owner[name]
        if to and to ~= f.src then edges[f.src][to] = name end
      end
    end
    -- depth-first search: a file met again on the current path closes a circle
    local state, path, circle = {}, {}, nil
    local function visit(f)
      state[f] = "open"
      path[#path + 1] = f
      for to, via in pairs(edges[f]) do
        if circle then break end
        if state[to] == "open" then
          local i = #path
          while path[i] ~= to do i = i - 1 end
          local names = {}
          for k = i, #path do names[#names + 1] = path[k] end
          circle = table.concat(names, " -> ") .. " -> " .. to .. " (" .. via .. ")"
        elseif not state[to] then
          visit(to)
        end
      end
      path[#path] = nil
      state[f] = "done"
    end
    for _, f in ipairs(files) do
      if not state[f.src] and not circle then visit(f.src) end
    end
    assert.is_nil(circle)
  end)
end)

describe("examples/c/generate.c", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.5, reset = true }, function(s, d) sbx, dir = s, d end)

  it("links the engine and not liblua, and writes an MP4 from the sandbox", function()
    local bin = "build/examples/generate"
    assert.is_true(util.exists(bin), "make examples builds " .. bin)
    local _, libs = util.run("ldd " .. bin)
    assert.is_falsy(libs:find("liblua", 1, true), libs)
    assert.truthy(libs:find("libcurl", 1, true), libs)
    local out = dir .. "/c.mp4"
    local status, text = util.run(("APIMART_API_KEY=k-c-SECRET timeout 60 %s %s %s"):format(bin,
      sbx.base("apimart"), out))
    assert.equal(0, status, text)
    assert.equal("ftyp", (util.read(out) or ""):sub(5, 8))
    assert.matches("downloaded to " .. out:gsub("%p", "%%%0"), text)
    assert.is_falsy(text:find("SECRET", 1, true))
    assert.equal(1, sbx.stats().apimart.tasks)
    -- a gateway that refuses: the engine's error, exit 1, nothing written
    local bad = dir .. "/none.mp4"
    status, text = util.run(("APIMART_API_KEY=k timeout 30 %s http://127.0.0.1:9/apimart %s"):format(bin, bad))
    assert.equal(1, status, text)
    assert.matches("generate: ", text)
    assert.is_false(util.exists(bad))
  end)
end)
