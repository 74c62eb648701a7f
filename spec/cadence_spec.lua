-- The poll policy's rules, one by one (csrc/engine/cadence.c: pf_poll_delay, pf_poll_first, the
-- learned durations), as pure functions of numbers through spec/support/cadence_probe.c; then the
-- rules that only the whole client shows, on virtual time against the sandbox: an early failure
-- noticed in time on a gateway with hints, and the sandbox's #failat. How poll.interval and
-- poll.max combine in pixflow.new: options_spec.
local pixflow = require "pixflow"
local sandbox = require "spec.support.sandbox"
local util = require "spec.support.util"
local cjson = require "cjson"

local dir, probe_bin

-- Run the probe over these command lines; returns its answer lines (the "ok"s left out).
local function probe(lines)
  local input = dir .. "/in"
  local f = assert(io.open(input, "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  local p = assert(io.popen(probe_bin .. " < " .. input))
  local out = {}
  for l in p:lines() do if l ~= "ok" then out[#out + 1] = l end end
  p:close()
  return out
end
local function nums(line)
  local t = {}
  for x in line:gmatch("%S+") do t[#t + 1] = tonumber(x) end
  return t
end

-- The default options (lua/pixflow/defaults.lua): initial 5, interval 5, max 30, backoff 1.5,
-- jitter 0.2, min 1, adaptive.
local DEFAULTS = "opts 5 5 30 1.5 0.2 1 1"

-- Durations whose logs are a normal's quantiles (mean mu, spread sigma): a log-normal, exactly.
local function lognormal_adds(median, sigma, n)
  -- normal quantiles by bisection on a rough Phi (the fit is checked against these logs, so
  -- only their spread matters)
  local function phi(z) return 0.5 * (1 + (z >= 0 and 1 or -1) * math.sqrt(1 - math.exp(-2 * z * z / math.pi))) end
  local lines, logs = {}, {}
  for i = 1, n do
    local u, lo, hi = (i - 0.5) / n, -8, 8
    for _ = 1, 60 do
      local mid = (lo + hi) / 2
      if phi(mid) < u then lo = mid else hi = mid end
    end
    local x = math.log(median) + sigma * (lo + hi) / 2
    logs[i] = x
    lines[i] = ("add %.17g %.17g"):format(math.exp(x), math.exp(x))
  end
  return lines, logs
end
local function mean_sd(xs)
  local s = 0
  for _, x in ipairs(xs) do s = s + x end
  local m, v = s / #xs, 0
  for _, x in ipairs(xs) do v = v + (x - m) ^ 2 end
  return m, math.sqrt(v / (#xs - 1))
end
local function concat(...)
  local out = {}
  for _, l in ipairs{ ... } do
    if type(l) == "table" then for _, x in ipairs(l) do out[#out + 1] = x end else out[#out + 1] = l end
  end
  return out
end
-- a window like W4's: 100 one-minute-median successes (sigma 0.5) and 11 early failures
local W4_LIKE = concat((lognormal_adds(60, 0.5, 100)), (function()
  local t = {}
  for i = 1, 11 do t[i] = "fail" end
  return t
end)())

describe("poll policy (pure)", function()
  setup(function()
    dir = util.tmpdir()
    probe_bin = dir .. "/cadence_probe"
    local status, out = util.run(("cc -std=c11 -D_DEFAULT_SOURCE -O1 $(pkg-config --cflags libcurl jansson) "
      .. "-Icsrc -Icsrc/engine -o %s spec/support/cadence_probe.c csrc/engine/cadence.c -lm"):format(probe_bin))
    assert.equal(0, status, out)
  end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("nothing learned, no hints: every poll.interval; past ten minutes, the back-off to poll.max", function()
    local out = probe{ DEFAULTS, "delay0 12 -1 -1 2 0", "delay 12 -1 -1 2 0", "delay0 599 -1 -1 119 0",
                       "delay0 601 -1 -1 120 0" }
    assert.same({ "5 0", "5 0", "5 0", "30 0" }, out)
  end)

  it("poll.adaptive off: poll.interval times poll.backoff for every three polls, up to poll.max; hints unused", function()
    local out = probe(concat("opts 5 5 30 1.5 0.2 1 0", W4_LIKE, "delay 10 -1 -1 0 0", "delay 10 -1 -1 3 0",
                             "delay 10 -1 -1 6 0", "delay 10 -1 -1 30 0", "delay 10 50 20 0 0", "first 0"))
    assert.same({ "5 0", "7.5 0", "11.25 0", "30 0", "5 0", "5" }, out)
  end)

  it("learns a log-normal from sixteen successes: each recorded at the middle of where it ended", function()
    local adds, logs = lognormal_adds(60, 0.5, 16)
    local first15 = { table.unpack(adds, 1, 15) }
    local m15 = nums(probe(concat(DEFAULTS, first15, "model"))[1])
    assert.equal(0, m15[1])                                     -- not ready at fifteen
    local m = nums(probe(concat(DEFAULTS, adds, "model"))[1])
    local mu, sd = mean_sd(logs)
    assert.equal(1, m[1])
    assert.equal(16, m[2])
    assert.near(mu, m[3], 1e-12)
    assert.near(sd, m[4], 1e-12)
    -- seen running at 50 s, seen done at 70 s: 60 s
    local one = {}
    for i = 1, 16 do one[i] = "add 50 70" end
    local m1 = nums(probe(concat(DEFAULTS, one, "model"))[1])
    assert.near(math.log(60), m1[3], 1e-12)
  end)

  it("a task stuck for an hour among one-minute tasks does not widen the fit", function()
    local adds, logs = lognormal_adds(60, 0.3, 60)
    local m = nums(probe(concat(DEFAULTS, adds, "add 3600 3600", "model"))[1])
    local _, sd = mean_sd(logs)
    assert.near(sd, m[4], 1e-9)
  end)

  it("learns the share of early failures, with a prior of one in ten", function()
    local adds = lognormal_adds(60, 0.5, 20)
    local m = nums(probe(concat(DEFAULTS, adds, "fail", "fail", "model"))[1])
    assert.near((2 + 1) / (22 + 10), m[5], 1e-12)
    -- the window is the last 128 ends: old failures leave it
    local many = lognormal_adds(60, 0.5, 128)
    local m2 = nums(probe(concat(DEFAULTS, "fail", "fail", "fail", many, "model"))[1])
    assert.near(1 / (128 + 10), m2[5], 1e-12)
  end)

  it("learned, no hints: the gap is poll.interval / sqrt(E[T] h), taken mid-gap: long early, short near the usual end", function()
    local lines = concat(DEFAULTS, W4_LIKE, "model")
    for _, t in ipairs{ 0, 20, 40, 60, 90 } do lines[#lines + 1] = ("delay %d -1 -1 3 0"):format(t) end
    local out = probe(lines)
    local m = nums(out[1])
    local mu, s, p, mean_end = m[3], m[4], m[5], m[6]
    local gaps = {}
    for i = 2, #out do gaps[i - 1] = nums(out[i])[1] end
    assert.is_true(gaps[1] > gaps[2] and gaps[2] > gaps[3] and gaps[3] > gaps[4], table.concat(gaps, " "))
    assert.is_true(gaps[4] > 3 and gaps[4] < 4.5, "gap at 60 s: " .. gaps[4])
    -- the hazard of the model's end, written again here: the gap at 60 s solves g = I / sqrt(E h(60 + g/2))
    local function Phi(z)
      -- erfc to 1.2e-7 (the Chebyshev fit of Numerical Recipes, 6.2)
      local x = math.abs(z) / math.sqrt(2)
      local t = 1 / (1 + 0.5 * x)
      local r = t * math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
                t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
                t * (-0.82215223 + t * 0.17087277)))))))))
      return z >= 0 and 1 - r / 2 or r / 2
    end
    local function h(t)
      local z = (math.log(t) - mu) / s
      local fd = math.exp(-z * z / 2) / (t * s * math.sqrt(2 * math.pi))
      local inv_above = math.exp(-mu + s * s / 2) * (1 - Phi(z + s))
      local F = (1 - p) * Phi(z) + p * (Phi(z) + t * inv_above)
      return ((1 - p) * fd + p * inv_above) / (1 - F)
    end
    local g = gaps[4]
    assert.near(5 / math.sqrt(mean_end * h(60 + g / 2)), g, 1e-3)   -- to a millisecond
    -- the trade is the user's: poll.interval 2 polls 2/5 as far apart (where nothing clamps)
    local two = nums(probe(concat("opts 5 2 30 1.5 0.2 0.1 1", W4_LIKE, "delay 60 -1 -1 3 0"))[1])[1]
    assert.near(0.4 * g, two, 0.05 * g)
  end)

  it("learned early failures bound the early gaps; with none seen the durations alone set them", function()
    local with = nums(probe(concat(DEFAULTS, W4_LIKE, "delay 1 -1 -1 1 0"))[1])[1]
    assert.is_true(with < 16, "early gap " .. with)
    local none = nums(probe(concat(DEFAULTS, (lognormal_adds(60, 0.5, 128)), "delay 1 -1 -1 1 0"))[1])[1]
    assert.is_true(none > with + 5, ("early gaps %g and %g"):format(with, none))
  end)

  it("the first poll: the learned one when later than poll.initial, never past poll.max, less the jitter", function()
    local out = probe(concat(DEFAULTS, W4_LIKE, "first 0", "first 0.5", "first0 0.5", "delay 0 -1 -1 0 0"))
    local learned_first = nums(out[4])[1]
    assert.is_true(learned_first > 10 and learned_first < 16, out[4])
    assert.near(learned_first, tonumber(out[1]), 1e-9)
    assert.near(learned_first * 0.9, tonumber(out[2]), 1e-9)
    assert.near(4.5, tonumber(out[3]), 1e-9)                       -- nothing learned: poll.initial
    assert.equal(10, tonumber(probe(concat("opts 5 5 10 1.5 0 1 1", W4_LIKE, "first 0"))[1]))
    assert.equal(20, tonumber(probe(concat("opts 20 5 30 1.5 0 1 1", W4_LIKE, "first 0"))[1]))
  end)

  it("hints: aimed at the predicted end, no gap longer than poll.interval / sqrt(the failure share)", function()
    local out = probe{ DEFAULTS, "delay 10 10 -1 2 0", "delay 2 -1 20 1 0", "delay 60 95 -1 9 0" }
    assert.near(5 / math.sqrt(0.1), nums(out[1])[1], 1e-9)        -- 90 s predicted; the prior 1 in 10
    assert.same({ 10, 0 }, nums(out[2]))                           -- half the estimate
    assert.near(60 * 5 / 95, nums(out[3])[1], 1e-9)
    -- a gateway whose tasks never fail: the prediction, up to poll.max
    local none = probe(concat(DEFAULTS, (lognormal_adds(60, 0.5, 128)), "delay 10 10 -1 2 0"))
    assert.same({ 30, 0 }, nums(none[1]))
    -- past the prediction: poll.min apart, growing by half up to poll.interval
    local over = probe{ DEFAULTS, "delay 80 99 0 9 0", "delay 81 100 0 10 0", "delay 81 -1 0 10 1",
                        "delay 81 -1 0 10 2", "delay 81 -1 0 10 6" }
    assert.same({ { 1, 1 }, { 1, 1 }, { 1.5, 2 }, { 2.25, 3 }, { 5, 7 } },
                { nums(over[1]), nums(over[2]), nums(over[3]), nums(over[4]), nums(over[5]) })
  end)

  it("past the learned 99.9th percentile a task is an outlier: the back-off, as without a model", function()
    local out = probe(concat(DEFAULTS, W4_LIKE, "model"))
    local tail = nums(out[1])[7]
    local after = probe(concat(DEFAULTS, W4_LIKE, ("delay %g -1 -1 3 0"):format(tail + 1),
                               ("delay %g -1 -1 30 0"):format(tail + 1)))
    assert.same({ { 7.5, 0 }, { 30, 0 } }, { nums(after[1]), nums(after[2]) })
  end)

  it("every gap lies within poll.min .. poll.max, however the options and the inputs combine", function()
    local optsets = { DEFAULTS, "opts 5 60 30 1.5 0.2 1 1", "opts 0.1 0.1 0.3 1.5 0 1 1", "opts 5 5 30 1.5 0 40 1",
                      "opts 5 5 2 3 0 0.5 0", "opts 0 0.001 0.001 1 0 0.001 1" }
    for _, o in ipairs(optsets) do
      local v = nums(o)
      local max, min = v[3], v[6]
      local lo = math.min(min, max)
      for _, window in ipairs{ {}, W4_LIKE } do
        local lines = concat(o, window)
        for _, e in ipairs{ 0, 0.5, 5, 30, 60, 200, 400, 700 } do
          for _, pr in ipairs{ -1, 5, 10, 50, 99 } do
            for _, eta in ipairs{ -1, 0, 3, 100 } do
              for _, np in ipairs{ 0, 5, 100 } do
                lines[#lines + 1] = ("delay %g %d %g %d 3"):format(e, pr, eta, np)
                lines[#lines + 1] = ("delay0 %g %d %g %d 3"):format(e, pr, eta, np)
              end
            end
          end
        end
        for _, l in ipairs(probe(lines)) do
          local d = nums(l)[1]
          assert.is_true(d >= lo - 1e-12 and d <= max + 1e-12, ("%s: %s"):format(o, l))
        end
      end
    end
  end)
end)

describe("poll policy (client)", function()
  local sbx
  sandbox.around({ task_seconds = 5, reset = true }, function(s) sbx = s end)

  local function set_clock(now)
    assert.equal(200, (sandbox.request("POST", sbx.url .. "/_sandbox/clock", cjson.encode{ now = now })))
  end
  -- One task on virtual time, both clocks moved from due time to due time; returns the task,
  -- when it was seen done, and each status seen before ({ at, status, progress }).
  local function drive(provider, poll, prompt)
    local c = assert(pixflow.new{ provider = provider, api_key = "k", base_url = sbx.base(provider),
                                  clock = "manual", poll = poll })
    local wall0 = c._core:_wall_now()
    set_clock(wall0)
    local now, seen = 0, {}
    local t = assert(c:submit{ prompt = prompt, references = { { name = "hero", image = "https://e.com/h.png" } },
                               duration = 5 })
    c:on_change(function(task) seen[#seen + 1] = { at = now, status = task.status, progress = task.progress } end)
    for _ = 1, 10000 do
      repeat c:poll(0.001) local r, q, _, j, left = c._core:_transfers() until r == 0 and q == 0 and j == 0 and not left
      if t.done then break end
      local dt = assert(c._core:_next_due(), "nothing due while the task runs")
      c._core:_advance_clock(math.max(dt, 0))
      now = now + math.max(dt, 0)
      set_clock(wall0 + now)
    end
    set_clock(0)
    c:close()
    return t, now, seen
  end

  it("the sandbox's #failat ends a #moderate task part-way, its progress following #seconds until then", function()
    local t, at, seen = drive("apimart", { adaptive = false, initial = 1, interval = 1, jitter = 0 },
                              "@hero walks #seconds=100 #failat=20 #moderate")
    assert.equal("moderated", t.status)
    assert.is_true(at >= 20 and at <= 21, "seen at " .. at)
    local last
    for _, s in ipairs(seen) do if s.status == "running" then last = s.progress end end
    assert.is_true(last >= 15 and last <= 20, "progress before the end: " .. tostring(last))
  end)

  for _, p in ipairs{ "apimart", "jiekou" } do
    it(p .. ": a moderation early in a long task is noticed within poll.interval / sqrt(1/10), not at the predicted end", function()
      -- the first poll (5 s) sees the task queued with a 100 s estimate: aimed at its end, the next
      -- poll would come poll.max (30 s) later, 23 s after the moderation at 12 s
      local t, at = drive(p, { jitter = 0 }, "@hero walks #seconds=100 #estimate=100 #failat=12 #moderate")
      assert.equal("moderated", t.status)
      assert.is_true(at - 12 <= 5 / math.sqrt(0.1), ("noticed %.2f s late"):format(at - 12))
    end)
  end
end)
