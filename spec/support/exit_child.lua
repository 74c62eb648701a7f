-- exit_child.lua: run by exit_spec: submit with a large local image (its hash runs on the worker),
-- then end the process a moment later, the way a script does. args: image, seconds, how
-- ("exit": os.exit(0), the client left open; "close": close, then os.exit(0); "end": close and
-- let the script end, which closes the Lua state).
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local pixflow = require "pixflow"
local image, seconds, how = arg[1], tonumber(arg[2]), arg[3]
-- nothing listens there: nothing is sent before the hash ends anyway
local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = "http://127.0.0.1:9" })
assert(c:submit{ model = "v6", prompt = "@hero walks", duration = 5, resolution = "540p",
                 references = { { name = "hero", image = image } } })
local stop = os.clock() + seconds
repeat c:poll(0) until os.clock() >= stop
io.stdout:write("exiting\n")
io.stdout:flush()
if how == "exit" then os.exit(0) end
c:close()
if how == "close" then os.exit(0) end
