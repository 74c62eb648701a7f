-- Transport and secrets: TLS verification stays on (an HTTPS sandbox with a self-signed
-- certificate is refused unless the user names that CA), redirects only to http(s), result
-- names cannot leave their directory, size caps hold, and the API key appears in no output
-- channel: errors, the journal, --json events, the command's stderr.
local pixflow = require "pixflow"
local cjson = require "cjson"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"

local REFS = { { name = "hero", image = "https://cdn.example.com/hero.png" } }

describe("TLS", function()
  local dir, cert, key, sbx
  setup(function()
    dir = util.tmpdir()
    cert, key = dir .. "/cert.pem", dir .. "/key.pem"
    -- a throwaway self-signed certificate for 127.0.0.1, made here (no key is kept in the repo)
    local status, out = util.run(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s "
      .. "-days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>&1"):format(key, cert))
    assert(status == 0, out)
    sbx = sandbox.start{ task_seconds = 0.2, tls_cert = cert, tls_key = key }
  end)
  teardown(function()
    sbx.stop()
    os.execute("rm -rf " .. dir)
  end)

  local function client(extra)
    local opts = { provider = "apimart", api_key = "sk-tls", base_url = sbx.base("apimart"),
                   poll = { initial = 0.05, interval = 0.05, max = 0.1 }, retry = { base = 0.01, max = 0.02 } }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return assert(pixflow.new(opts))
  end

  it("refuses a certificate no trusted CA signed, before anything is sent", function()
    assert.matches("^https://", sbx.url)
    local c = client()
    local t = assert(c:submit{ prompt = "@hero runs", references = REFS })
    local ok, err = t:wait{ timeout = 10 }
    assert.is_nil(ok)
    assert.equal("failed", t.status)
    assert.equal("transport", err.kind)
    assert.matches("certificate", err.message)
    assert.matches("nothing was charged", err.message)
    assert.equal(0, sbx.stats().apimart.submits)
    c:close()
  end)

  it("works end to end when the user names that CA (ca_file)", function()
    local c = client{ ca_file = cert }
    local t = assert(c:submit{ prompt = "@hero runs", references = REFS })
    assert(t:wait{ timeout = 10 })
    assert(t:download(dir .. "/tls.mp4", { timeout = 10 }))
    assert.equal("ftyp", util.read(dir .. "/tls.mp4"):sub(5, 8))
    assert.equal(1, sbx.stats().apimart.tasks)
    c:close()
  end)
end)

describe("transport limits", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.2, reset = true }, function(s, d) sbx, dir = s, d end)

  local function done_task(extra)
    local opts = { provider = "apimart", api_key = "sk-limits", base_url = sbx.base("apimart"),
                   poll = { initial = 0.05, interval = 0.05, max = 0.1 }, retry = { base = 0.01, max = 0.02 } }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local c = assert(pixflow.new(opts))
    local t = assert(c:submit{ prompt = "@hero runs", references = REFS })
    assert(t:wait{ timeout = 10 })
    return c, t
  end

  for _, target in ipairs({ "file:///etc/passwd", "ftp://127.0.0.1/clip.mp4", "gopher://127.0.0.1/" }) do
    it("a download redirected to " .. target:match("^%a+") .. " is refused", function()
      sbx.faults{ { gateway = "apimart", route = "download", action = "redirect", location = target } }
      local c, t = done_task()
      local path, err = t:download(dir .. "/r.mp4", { timeout = 10 })
      assert.is_nil(path)
      assert.equal("transport", err.kind)
      assert.is_false(util.exists(dir .. "/r.mp4"))
      c:close()
    end)
  end

  it("an http redirect is followed (signed URLs often point at a CDN)", function()
    local c, t = done_task()
    local real = t.video_url
    c:close()
    sbx.faults{ { gateway = "apimart", route = "download", action = "redirect", location = real, times = 1 } }
    local c2, t2 = done_task()
    assert(t2:download(dir .. "/followed.mp4", { timeout = 10 }))
    assert.equal("ftyp", util.read(dir .. "/followed.mp4"):sub(5, 8))
    c2:close()
  end)

  it("max_download_bytes holds for a download that is larger", function()
    local c = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = sbx.base("apimart"),
                                  max_download_bytes = 100000, poll = { initial = 0.05, interval = 0.05 } })
    local t = assert(c:submit{ prompt = "@hero runs #size=5000000", references = REFS })
    local path, err = t:download(dir .. "/big.mp4", { timeout = 10 })
    assert.is_nil(path)
    assert.equal("too_large", err.code)
    assert.is_false(util.exists(dir .. "/big.mp4"))
    c:close()
  end)

  it("a download by id writes a file name made from the id, never a path elsewhere", function()
    local cli = require "pixflow.cli"
    assert.equal("629000000000000001.mp4", cli.default_output("629000000000000001"))
    assert.equal("0385dc79-5ff8-4d82.mp4", cli.default_output("0385dc79-5ff8-4d82"))
    for _, id in ipairs({ "../../etc/cron.d/x", "/etc/passwd", "..", ".hidden", "a\nb", "x/../../y" }) do
      local name = cli.default_output(id)
      assert.is_nil(name:find("/", 1, true), name)
      assert.is_nil(name:find("^%."), name)
      assert.is_nil(name:find("%c"), name)
    end
  end)
end)

describe("secrets", function()
  local sbx, dir
  sandbox.around({ task_seconds = 0.2, reset = true }, function(s, d) sbx, dir = s, d end)
  local KEY = "sk-live-SUPER-SECRET-7f3a9"

  it("the key is in no error, journal line, --json event or stderr, and signed URLs are redacted", function()
    local seen = {}
    -- the library: errors of every kind this run can meet
    local c = assert(pixflow.new{ provider = "apimart", api_key = KEY, base_url = sbx.base("apimart"),
                                  journal = dir .. "/j.db", trace = dir .. "/trace.jsonl",
                                  poll = { initial = 0.05, interval = 0.05 } })
    local ok_task = assert(c:submit{ prompt = "@hero x", references = REFS })
    assert(ok_task:download(dir .. "/lib.mp4", { timeout = 10 }))
    local t = assert(c:submit{ prompt = "@hero x #fail", references = REFS })
    local _, err = t:wait{ timeout = 10 }
    seen[#seen + 1] = tostring(err)
    seen[#seen + 1] = cjson.encode(err)
    local bad = assert(pixflow.new{ provider = "apimart", api_key = "invalid", base_url = sbx.base("apimart") })
    local _, aerr = bad:submit{ prompt = "@hero x", references = REFS }:wait{ timeout = 10 }
    seen[#seen + 1] = tostring(aerr)
    c:close()
    bad:close()
    seen[#seen + 1] = util.journal_bytes(dir .. "/j.db")
    assert.truthy(#seen[#seen] > 0)
    -- the command: --json events and the human output, stdout and stderr
    local status, out = util.run(("APIMART_API_KEY=%s XDG_STATE_HOME=%s bin/pixflow generate --json "
      .. "--trace " .. dir .. "/cli-trace.jsonl --sandbox %s --provider apimart --prompt '@hero runs' --ref hero=https://cdn.example.com/hero.png "
      .. "--output %s/cli.mp4 2>&1"):format(KEY, dir, sbx.url, dir))
    assert.equal(0, status, out)
    seen[#seen + 1] = out
    local _, out2 = util.run(("APIMART_API_KEY=%s XDG_STATE_HOME=%s bin/pixflow generate "
      .. "--sandbox %s --provider apimart --prompt '@hero runs #fail' --ref hero=https://cdn.example.com/hero.png "
      .. "--output %s/cli2.mp4 2>&1"):format(KEY, dir, sbx.url, dir))
    seen[#seen + 1] = out2
    seen[#seen + 1] = util.journal_bytes(dir .. "/pixflow/journal.db")
    assert.truthy(#seen[#seen] > 0)
    -- the debug traces: one line per request, every request there, and no signed query string
    local traces = util.read(dir .. "/trace.jsonl") .. util.read(dir .. "/cli-trace.jsonl")
    seen[#seen + 1] = traces
    local kinds = {}
    for line in traces:gmatch("[^\n]+") do
      local ev = cjson.decode(line)
      kinds[ev.request] = true
      assert.is_nil(ev.url:find("expires=", 1, true), "a signed query string in the trace: " .. ev.url)
    end
    assert.is_true(kinds.submit and kinds.status and kinds.download)
    assert.truthy(traces:find("?<redacted>", 1, true))
    for i, text in ipairs(seen) do
      assert.is_nil(text:find(KEY, 1, true), ("channel %d shows the key: %s"):format(i, text))
      assert.is_nil(text:find("SUPER%-SECRET"), ("channel %d shows part of the key"):format(i))
    end
    -- the --json events name the result URL without its signature
    for line in out:gmatch("[^\n]+") do
      local ok, ev = pcall(cjson.decode, line)
      if ok and type(ev) == "table" then
        for _, v in pairs(ev) do
          if type(v) == "string" and v:find("^https?://") then
            assert.is_nil(v:find("expires=", 1, true), "a signed query string in an event: " .. v)
          end
        end
      end
    end
  end)
end)

describe("a gateway that echoes the key in its errors", function()
  local KEY = "sk-live-ECHOED-SECRET-5d1c8e"
  local PART = "ECHOED-SECRET"
  local dir, srv, url

  setup(function()
    dir = util.tmpdir()
    srv = assert(io.popen("exec lua5.4 spec/support/echo_server.lua spec/fixtures/clip.mp4", "r"))
    url = assert(srv:read("l"):match("listening on (%S+)"), "the echo server did not start")
  end)
  teardown(function()
    sandbox.request("GET", url .. "/_stop")
    srv:close()
    os.execute("rm -rf " .. dir)
  end)

  local function clean(label, text)
    text = tostring(text)
    assert.is_nil(text:find(KEY, 1, true), label .. " shows the key: " .. text)
    assert.is_nil(text:find(PART, 1, true), label .. " shows part of the key: " .. text)
  end

  it("is redacted from every error a task carries, their text, the journal and the trace", function()
    local c = assert(pixflow.new{ provider = "apimart", api_key = KEY, base_url = url .. "/apimart",
                                  journal = dir .. "/j.jsonl", trace = dir .. "/trace.jsonl",
                                  poll = { initial = 0.05, interval = 0.05, jitter = 0 },
                                  retry = { base = 0.01, max = 0.02 } })
    local tasks = {}
    for _, word in ipairs{ "#auth", "#long", "#tail", "#submit500", "#fail", "plain" } do
      tasks[word] = assert(c:submit{ prompt = "a cat " .. word })
    end
    for _, t in pairs(tasks) do t:wait{ timeout = 10 } end
    local auth, long, unconf, failed, ok = tasks["#auth"], tasks["#long"], tasks["#submit500"], tasks["#fail"], tasks.plain
    assert.equal("auth", auth.error.kind)
    assert.matches("Incorrect API key provided: Bearer <redacted>", auth.error.message, 1, true)
    assert.matches("<redacted>$", long.error.message)           -- cut inside the key: its start too
    assert.equal("the key ending <redacted> is not valid", tasks["#tail"].error.message)
    assert.equal("unconfirmed", unconf.status)
    assert.matches("Cause: upstream failed for key Bearer <redacted>", unconf.error.message, 1, true)
    assert.equal("failed", failed.status)
    assert.matches("generation refused for Bearer <redacted>", failed.error.message, 1, true)
    assert.equal("succeeded", ok.status)
    assert.matches("busy; retry later, Bearer <redacted>", ok.last_retry.message, 1, true)
    assert(ok:download(dir .. "/ok.mp4", { timeout = 10 }))
    for word, t in pairs(tasks) do
      for _, field in ipairs{ "error", "last_retry" } do
        local e = t[field]
        if e then
          clean(word .. " " .. field, e.message)
          clean(word .. " " .. field .. " code", e.code)
          clean(word .. " tostring(" .. field .. ")", e)
          clean(word .. " " .. field .. " as JSON", cjson.encode(e))
        end
      end
      local _, derr = t:download_state()
      if derr then clean(word .. " download error", derr) end
    end
    c:close()
    -- stored redacted: still clean once the client (and its key) is gone
    clean("after close", failed.error)
    clean("after close", ok.last_retry)
    clean("journal", util.journal_bytes(dir .. "/j.db"))
    clean("trace", util.read(dir .. "/trace.jsonl"))
    assert.truthy(util.journal_bytes(dir .. "/j.db"):find("<redacted>", 1, true))
  end)

  it("is redacted from pixflow generate --json", function()
    local function generate(prompt, out)
      return util.run(("APIMART_API_KEY=%s HOME=%s XDG_STATE_HOME=%s bin/pixflow generate --json --trace %s/cli-trace.jsonl "
        .. "--sandbox %s --provider apimart --prompt '%s' --output %s/%s 2>&1"):format(KEY, dir, dir, dir, url, prompt, dir, out))
    end
    local status, out = generate("a cat #auth", "auth.mp4")
    assert.is_not.equal(0, status)
    assert.truthy(out:find("<redacted>", 1, true), out)           -- the echo reached the output
    clean("generate --json (refused)", out)
    status, out = generate("a cat #fail", "fail.mp4")
    assert.is_not.equal(0, status)
    assert.truthy(out:find("<redacted>", 1, true), out)
    clean("generate --json (failed)", out)
    status, out = generate("a cat", "ok.mp4")
    assert.equal(0, status, out)
    clean("generate --json (retried)", out)
    clean("the command's journal", util.read(dir .. "/pixflow/journal.jsonl") or "")
    clean("the command's trace", util.read(dir .. "/cli-trace.jsonl") or "")
  end)
end)
