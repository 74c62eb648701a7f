-- Every journal write is checked (issue 12, section 1): on a full disk or a read-only one the
-- caller sees an error naming the journal's path, nothing is sent that is not recorded first, and
-- a record that could not be written is kept and written once it can be. The disk is a real
-- tmpfs of a few hundred kilobytes (mount needs root: without it these specs are pending).
local pixflow = require "pixflow"
local journal = require "pixflow.journal"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local function sh(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  return ok == true or ok == 0
end

-- A tmpfs of size bytes at path, or nil when this machine will not mount one.
local function tmpfs(path, size)
  assert(sh("mkdir -p " .. path))
  if not sh(("mount -t tmpfs -o size=%d tmpfs %s"):format(size, path)) then return nil end
  return path
end

local function fill(path)
  sh(("dd if=/dev/zero of=%s/fill bs=4096 2>/dev/null; sync"):format(path))
end

describe("journal writes on a full or read-only disk", function()
  local sbx, dir, mnt
  sandbox.around({ task_seconds = 0.4, reset = true }, function(s, d) sbx, dir = s, d end)
  after_each(function()
    if mnt then sh("umount " .. mnt) end
    mnt = nil
  end)

  it("an intent that cannot be written fails the task with an io error naming the path, and nothing is sent", function()
    mnt = tmpfs(dir .. "/full", 256 * 1024)
    if not mnt then pending("cannot mount a tmpfs here (mount needs root)") return end
    local path = mnt .. "/journal.db"
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  journal = path, poll = { initial = 0.05, interval = 0.1 } })
    finally(function() c:close() end)
    fill(mnt)
    -- submit does not wait for the disk: the worker's intent fails, and the task with it
    local t = assert(c:submit({ prompt = "x" }, { output = dir .. "/x.mp4" }))
    local ok, err = t:wait{ timeout = 20 }
    assert.is_nil(ok)
    assert.equal("failed", t.status)
    assert.equal("io", err.kind)
    assert.matches(path, err.message, 1, true)
    assert.matches("disk is full", err.message, 1, true)
    assert.matches("nothing was sent", err.message, 1, true)
    for _ = 1, 5 do c:poll(0.05) end
    assert.equal(0, sbx.stats().apimart.submits)
    c:close()
  end)

  it("a record the pump cannot write is reported, kept, and written once the disk has room", function()
    mnt = tmpfs(dir .. "/full2", 512 * 1024)
    if not mnt then pending("cannot mount a tmpfs here (mount needs root)") return end
    local path = mnt .. "/journal.db"
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  journal = path, poll = { initial = 0.05, interval = 0.1 } })
    finally(function() c:close() end)
    local out = dir .. "/paid.mp4"
    local t = assert(c:submit({ prompt = "paid for" }, { output = out }))
    fill(mnt)                                -- the disk fills between the intent and the answer
    local errs = {}
    local deadline = pixflow.now() + 20
    while t.status ~= "succeeded" and pixflow.now() < deadline do
      local _, jerr = c:poll(0.05)
      if jerr then errs[#errs + 1] = jerr end
    end
    assert.equal("succeeded", t.status)
    assert.is_true(#errs > 0, "poll reported no journal failure")
    assert.equal("io", errs[1].kind)
    assert.matches(path, errs[1].message, 1, true)
    assert.matches(t.id, errs[1].message, 1, true)    -- the id the user must not lose
    assert.equal("io", t.journal_error.kind)
    -- the video is not lost: it downloads (outside the full disk)
    assert(t:download(out, { timeout = 20 }))
    -- room again: what was owed is written within a second or so
    assert(os.remove(mnt .. "/fill"))
    deadline = pixflow.now() + 5
    while t.journal_error and pixflow.now() < deadline do c:poll(0.1) end
    assert.is_nil(t.journal_error)
    c:close()
    -- a later resume knows the task is paid, succeeded and downloaded (not "unconfirmed")
    local tasks = assert(journal.read(path))
    assert.equal(1, #tasks)
    assert.equal(t.id, tasks[1].id)
    assert.equal("done", tasks[1].state)
    assert.equal(util.abspath(out), tasks[1].downloaded)
    local report = assert(pixflow.resume{ journal = path, keys = { apimart = "k" } })
    assert.equal("done", report.tasks[1].state)
    assert.equal(1, sbx.stats().apimart.submits)
  end)

  it("a read-only journal is a clear error from new, naming the path", function()
    mnt = tmpfs(dir .. "/ro", 256 * 1024)
    if not mnt then pending("cannot mount a tmpfs here (mount needs root)") return end
    local path = mnt .. "/journal.db"
    local j = assert(journal.open(path))
    j:close()
    assert(sh("mount -o remount,ro " .. mnt))
    local c, err = pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"), journal = path }
    assert.is_nil(c)
    assert.equal("io", err.kind)
    assert.matches(path, err.message, 1, true)
  end)

  it("pixflow list on a journal path that is a directory says so", function()
    local status, out = util.run(("XDG_STATE_HOME=%s bin/pixflow list --journal %s"):format(dir, dir))
    assert.equal(6, status, out)
    assert.matches("is a directory", out)
    assert.is_nil(out:find("traceback", 1, true))
  end)
end)
