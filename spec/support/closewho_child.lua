-- closewho_child.lua: run by budget_spec under spec/support/closewho.c: status replies over
-- their cap (each connection given up mid-reply), then close; arg: the sandbox's base URL.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local pixflow = require "pixflow"
local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = arg[1],
                              max_body_bytes = 64 * 1024,
                              retry = { base = 0.01, max = 0.02, poll_failures = 3 },
                              poll = { initial = 0.05, interval = 0.05 } })
local t = assert(c:submit{ model = "v6", prompt = "x #bigreply=3000000" })
local ok, err = t:wait{ timeout = 20 }
assert(not ok and err.code == "too_large", "expected too_large, got " .. tostring(err and err.code))
c:close()
assert(pixflow.flush(10))
print("ok")
