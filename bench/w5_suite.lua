-- w5_suite.lua: benchmark W5's rows (each run alone, with its own timeout) and its table, for run.lua and w5_pixflow.lua.
local cjson = require "cjson"

local M = {}

M.TARGET = 1e-3   -- issue 14: every poll(0), submit and close under 1 ms

-- name: what bench/w5_pixflow.lua runs; timeout: the whole row's limit, in seconds
M.ROWS = {
  { name = "dns", situation = "a resolver that never answers (`*.hang.test`)", timeout = 90 },
  { name = "download400", situation = "the end of a 400 MB download", smoke = "the end of an 8 MB download", timeout = 240 },
  { name = "download50", situation = "the end of a 50 MB download", smoke = "the end of a 2 MB download", timeout = 120 },
  { name = "complete200", situation = "200 tasks completing together (and downloading)", smoke = "20 tasks completing together",
    timeout = 180 },
  { name = "complete200j", situation = "200 tasks completing together, journal on",
    smoke = "20 tasks completing together, journal on", timeout = 180 },
  { name = "gzipbomb", situation = "a gzip-bomb status reply (64 MiB inflated)", smoke = "a gzip-bomb status reply (8 MiB)",
    timeout = 60 },
  { name = "endless", situation = "an endless download body", timeout = 60 },
  { name = "bigurl", situation = "a 4 MB video URL in a status reply", smoke = "a 1 MB video URL in a status reply",
    timeout = 60 },
  { name = "image20", situation = "submit with a 20 MB local reference image", smoke = "submit with a 2 MB local reference image",
    timeout = 90 },
}
M.by_name = {}
for _, r in ipairs(M.ROWS) do M.by_name[r.name] = r end

function M.situation(row, smoke) return smoke and row.smoke or row.situation end

local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- One run of one row: its JSON line, or { error = text } when it produced none.
local function run_row(row, smoke, log)
  local p = io.popen("mktemp -d \"${TMPDIR:-/tmp}/pixflow-w5.XXXXXX\"")
  local dir = p:read("l")
  p:close()
  if not dir or dir == "" then return { error = "mktemp failed" } end
  -- stderr goes to the terminal as the row runs; stdout carries the JSON line
  local cmd = ("timeout -k 5 %d lua5.4 bench/w5_pixflow.lua %s --tmp %s%s"):format(row.timeout, row.name, sh(dir),
    smoke and " --smoke" or "")
  p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, how, code = p:close()
  os.execute("rm -rf " .. sh(dir))
  local last = out:match("(%b{})%s*$")
  local ok, res = pcall(cjson.decode, last or "")
  if not last or not ok or type(res) ~= "table" then
    local why = how == "exit" and code == 124 and ("timed out after %d s"):format(row.timeout)
                or ("exited (%s %s) without a result"):format(tostring(how), tostring(code))
    if log then log:write(("W5 %s: %s\n"):format(row.name, why)) end
    return { error = why }
  end
  return res
end

--- Run every row `runs` times (each run of each row in turn). Returns the results by row name:
-- { runs = { json... }, errors = { text... } } and the order.
function M.run(opts)
  local res = {}
  for _, row in ipairs(M.ROWS) do res[row.name] = { runs = {}, errors = {} } end
  for r = 1, opts.runs or 1 do
    for _, row in ipairs(M.ROWS) do
      local one = run_row(row, opts.smoke, opts.log)
      local into = res[row.name]
      if one.error then into.errors[#into.errors + 1] = one.error
      else
        into.runs[#into.runs + 1] = one
        if opts.log then
          opts.log:write(("W5 run %d %-12s poll(0) %.3f ms, submit %.3f ms, close %.3f ms%s\n"):format(r, row.name,
            one.poll_max * 1e3, one.submit_max * 1e3, one.close_max * 1e3,
            one.ran == 1 and "" or "  (situation NOT re-created)"))
        end
      end
    end
  end
  res.smoke, res.nruns = opts.smoke, opts.runs or 1
  return res
end

-- The worst of a row's runs: each call's longest, and the run that holds the longest call of all.
local function worst(entry)
  local w = { poll = 0, submit = 0, close = 0, ran = #entry.runs > 0 }
  local top = -1
  for _, r in ipairs(entry.runs) do
    w.poll, w.submit, w.close = math.max(w.poll, r.poll_max), math.max(w.submit, r.submit_max), math.max(w.close, r.close_max)
    if r.ran ~= 1 then w.ran = false end
    for _, k in ipairs{ "poll", "submit", "close" } do
      if r[k .. "_max"] > top then top, w.run, w.kind = r[k .. "_max"], r, k end
    end
  end
  w.top = top
  return w
end
M.worst = worst

local function ms(v) return ("%.3f ms"):format(v * 1e3) end

-- The rows of the W5 table: situation, longest poll(0), submit, close, target, verdict.
function M.rows(res)
  local out = {}
  for _, row in ipairs(M.ROWS) do
    local e = res[row.name]
    local w = worst(e)
    local sit = (e.runs[1] and e.runs[1].situation) or M.situation(row, res.smoke)
    if #e.runs == 0 then
      out[#out + 1] = { sit, "-", "-", "-", "1 ms", "NOT RUN: " .. (e.errors[1] or "?"), row = row.name, met = false }
    else
      local met = w.poll < M.TARGET and w.submit < M.TARGET and w.close < M.TARGET
      local verdict = met and "pass" or ("FAIL (%.1fx)"):format(w.top / M.TARGET)
      if not w.ran then verdict = verdict .. ", situation NOT re-created" end
      if #e.errors > 0 then verdict = verdict .. (", %d run(s) failed: %s"):format(#e.errors, e.errors[1]) end
      out[#out + 1] = { sit, ms(w.poll), ms(w.submit), ms(w.close), "1 ms", verdict, row = row.name, met = met,
                        worst = w }
    end
  end
  return out
end

M.HEAD = { "situation", "longest poll(0)", "longest submit", "longest close", "target", "pass/fail" }

--- The table as text (columns padded).
function M.table(res)
  local rows = M.rows(res)
  local w = {}
  for i, h in ipairs(M.HEAD) do w[i] = #h end
  for _, r in ipairs(rows) do for i = 1, #M.HEAD do w[i] = math.max(w[i], #r[i]) end end
  local function line(cells)
    local o = {}
    for i = 1, #M.HEAD do o[i] = cells[i] .. (" "):rep(w[i] - #cells[i]) end
    return table.concat(o, "  ")
  end
  local out = { ("W5 frame safety (the worst of %d run%s per row%s)"):format(res.nruns, res.nruns > 1 and "s" or "",
    res.smoke and "; smoke sizes, not the real figures" or ""), line(M.HEAD) }
  for _, r in ipairs(rows) do out[#out + 1] = line(r) end
  return table.concat(out, "\n")
end

--- One line per row: which call was the longest, where, and what the row saw.
function M.longest_lines(res)
  local out = {}
  for _, row in ipairs(M.ROWS) do
    local w = worst(res[row.name])
    if w.run then
      local r = w.run
      local where = w.kind == "poll" and (" (pump %d of %d, %s)"):format(r.poll_at, r.pumps, r.poll_note)
                 or w.kind == "submit" and (" (submit %d of %d)"):format(r.submit_at, r.submits) or ""
      out[#out + 1] = ("W5 %s: longest %s %s%s; %s; steal %d ms in that run"):format(row.name,
        w.kind == "poll" and "poll(0)" or w.kind, ms(w.top), where, r.outcome, r.steal_ms or 0)
    end
  end
  return out
end

--- Did every row run and re-create its situation (what bench-smoke checks; no timing counts)?
function M.all_ran(res)
  for _, row in ipairs(M.ROWS) do
    local e = res[row.name]
    if #e.runs == 0 or #e.errors > 0 then return false, row.name end
    for _, r in ipairs(e.runs) do if r.ran ~= 1 then return false, row.name end end
  end
  return true
end

--- The W5 section of docs/benchmarks.md (lines).
function M.markdown(res)
  local md = { "## W5 frame safety\n",
    ("Each row re-creates one situation of issue 14 against the sandbox or bench/w5_servers.py and runs a game loop " ..
     "(`client:poll(0)` at 60 fps); the figures are the longest single call, wall clock, the worst of %d run%s. " ..
     "Re-run one row: `make all && lua5.4 bench/w5_pixflow.lua ROW` (`list` names them). How each row is made: " ..
     "[benchmarks-method.md](benchmarks-method.md#workloads).\n"):format(res.nruns, res.nruns > 1 and "s" or ""),
    "| " .. table.concat(M.HEAD, " | ") .. " |", "|" .. ("---|"):rep(#M.HEAD) }
  for _, r in ipairs(M.rows(res)) do
    local cells = {}
    for i = 1, #M.HEAD do cells[i] = r[i]:gsub("|", "/") end
    md[#md + 1] = "| " .. table.concat(cells, " | ") .. " |"
  end
  md[#md + 1] = ""
  for _, l in ipairs(M.longest_lines(res)) do md[#md + 1] = "- " .. l:gsub("^W5 ", ""):gsub("|", "/") end
  return md
end

return M
