-- The adapters as tables: one engine (csrc/adapters/proto.c) reads every reply and owns the
-- out-of-memory path; an adapter file holds its protocol's table and only what a table cannot say.
local util = require "spec.support.util"

local ADAPTERS = { "apimart", "pixverse", "dashscope", "jiekou", "baicai" }

describe("adapters as tables", function()
  for _, name in ipairs(ADAPTERS) do
    local src = assert(util.read("csrc/adapters/" .. name .. ".c"))
    it(name .. " declares one pf_proto table and binds the engine to it", function()
      assert.truthy(src:find("static const pf_proto " .. name .. " = {", 1, true))
      assert.truthy(src:find("PF_PROTO_CALLS(" .. name .. ")", 1, true))
      assert.truthy(src:find("PF_PROTO_MEMBERS(" .. name .. ")", 1, true))
    end)
    it(name .. " keeps no reply preamble or out-of-memory path of its own", function()
      assert.is_nil(src:find("success_reply", 1, true))
      assert.is_nil(src:find("static int nomem", 1, true))
      assert.is_nil(src:find("json_loadb", 1, true))
      -- the status ladder is the table's words: no strcmp on a status word
      assert.is_nil(src:find('strcmp%(s, "'))
      assert.is_nil(src:find('strcmp%(status, "'))
    end)
  end

  it("only the engine parses replies (PixVerse's submit_costs reads the envelope for credits)", function()
    for _, name in ipairs(ADAPTERS) do
      local src = util.read("csrc/adapters/" .. name .. ".c")
      local _, n = src:gsub("pf_json_parse_object", "")
      assert.equal(name == "pixverse" and 1 or 0, n, name)
    end
  end)
end)
