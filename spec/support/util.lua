-- spec/support/util.lua: small helpers shared by specs.
local M = {}

function M.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. p))
  return p
end

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

--- Run a shell command; returns its exit status (number) and its combined output.
function M.run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("a")
  local _, _, status = p:close()
  return status, out
end

function M.abspath(p)
  if p:sub(1, 1) == "/" then return p end
  local pwd = os.getenv("PWD") or io.popen("pwd"):read("l")
  return pwd .. "/" .. p
end

--- Every record of the journal database at path, oldest first ({ ev, key, t, ... } each, the
-- old JSONL journal's lines), or {} when there is no journal yet.
function M.journal_events(path)
  if not M.exists(path) then return {} end
  local j = assert(require("pixflow.journal").open(path))
  local out = assert(j:events())
  j:close()
  return out
end

--- The number of records of kind ev in the journal at path (and, with key, of that task).
function M.journal_count(path, ev, key)
  local n = 0
  for _, r in ipairs(M.journal_events(path)) do
    if r.ev == ev and (key == nil or r.key == key) then n = n + 1 end
  end
  return n
end

--- The bytes of every file pixflow keeps for the journal at path (the database, its WAL and
-- shared memory, its lock files): what must never hold a key.
function M.journal_bytes(path)
  local p = io.popen(("cat '%s' '%s'-* '%s'.owners/* 2>/dev/null"):format(path, path, path))
  local s = p:read("a")
  p:close()
  return s
end

function M.gc()
  collectgarbage("collect")
  collectgarbage("collect")
end

return M
