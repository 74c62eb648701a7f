-- w4_optimum.lua: the best status-poll schedule for W4's workload, found numerically, and what it
-- costs on a given list of tasks. A task's end (success or early failure) has a known
-- distribution: durations log-normal (median, sigma), and a fraction p of tasks fail uniformly
-- within what would have been their run. With no hints, the best any client can do is one fixed
-- schedule of poll times after acceptance for every task; this finds the one that minimises
--   E[requests] + lambda * E[notice delay]
-- by dynamic programming over a 0.1 s grid. lambda is the price of a second of delay that makes
-- fixed polling every `interval` the best fixed schedule (2 E[T] / interval^2, T a task's end):
-- the trade a user makes by choosing that interval. docs/benchmarks-method.md derives it.
local M = {}

-- erfc(x) to a relative error under 1.2e-7 (the Chebyshev fit in Numerical Recipes, 6.2).
local function erfc(x)
  local z = math.abs(x)
  local t = 1 / (1 + 0.5 * z)
  local r = t * math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
            t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
            t * (-0.82215223 + t * 0.17087277)))))))))
  return x >= 0 and r or 2 - r
end
local function Phi(z) return 0.5 * erfc(-z / math.sqrt(2)) end
M.Phi = Phi

-- The distribution of a task's end: F(t) = P(end <= t) and PE(t) = E[end; end <= t].
-- Durations D ~ logN(mu, sigma); a failure ends at U*D, U uniform in (0, 1), so its end has the
-- density E[1/D; D > t] and P(U*D <= t) = F_D(t) + t E[1/D; D > t].
function M.model(median, sigma, p)
  local mu = math.log(median)
  local mean = math.exp(mu + sigma * sigma / 2)          -- E[D]
  local inv = math.exp(-mu + sigma * sigma / 2)          -- E[1/D]
  local function z(t, shift) return (math.log(t) - mu - shift) / sigma end
  local function Fd(t) return t <= 0 and 0 or Phi(z(t, 0)) end
  local function PEd(t) return t <= 0 and 0 or mean * Phi(z(t, sigma * sigma)) end
  local function inv_above(t) return t <= 0 and inv or inv * (1 - Phi(z(t, -sigma * sigma))) end
  local m = { mean_end = (1 - p) * mean + p * mean / 2 }
  function m.F(t)
    if t <= 0 then return 0 end
    return (1 - p) * Fd(t) + p * (Fd(t) + t * inv_above(t))
  end
  function m.PE(t)
    if t <= 0 then return 0 end
    return (1 - p) * PEd(t) + p * 0.5 * (PEd(t) + t * t * inv_above(t))
  end
  -- where the distribution has all but 1e-7 of its mass (the schedule's horizon)
  m.horizon = math.exp(mu + 5.3 * sigma)
  return m
end

function M.price(model, interval) return 2 * model.mean_end / (interval * interval) end

-- The optimal schedule: poll times after acceptance, ascending, up to the model's horizon.
-- W(i) is the least cost still to come, weighted by P(end > t_i), after a poll at t_i (t_0 = 0,
-- the acceptance) that saw the task running: the next poll at t_j costs one request if the task
-- outlived t_i and lambda * E[(t_j - end); t_i < end <= t_j] of delay.
function M.schedule(model, lambda, step, max_gap)
  step, max_gap = step or 0.1, max_gap or 120
  local n = math.ceil(model.horizon / step)
  local w = math.floor(max_gap / step)
  local F, PE, S, T = {}, {}, {}, {}
  for i = 0, n do
    T[i] = i * step
    F[i], PE[i] = model.F(T[i]), model.PE(T[i])
    S[i] = 1 - F[i]
  end
  local W, nxt = {}, {}
  W[n] = 0
  for i = n - 1, 0, -1 do
    local best, bj = math.huge, n
    local Fi, PEi, Si = F[i], PE[i], S[i]
    local last = math.min(n, i + w)
    for j = i + 1, last do
      local c = Si + lambda * (T[j] * (F[j] - Fi) - (PE[j] - PEi)) + W[j]
      if c < best then best, bj = c, j end
    end
    W[i], nxt[i] = best, bj
  end
  local times, i = {}, 0
  while i < n do
    i = nxt[i]
    times[#times + 1] = T[i]
  end
  return times, W[0]
end

-- The expected requests per task and mean notice delay of a schedule under the model.
function M.expect(model, times)
  local req, delay, prev = 0, 0, 0
  for _, t in ipairs(times) do
    req = req + (1 - model.F(prev))
    delay = delay + t * (model.F(t) - model.F(prev)) - (model.PE(t) - model.PE(prev))
    prev = t
  end
  return req, delay
end

-- What a schedule costs on these tasks ({ ends = seconds, failed = bool }, in any order):
-- status requests per task; the mean notice delay of every task, of those that succeeded and of
-- those that failed early; the worst of the last.
function M.apply(times, tasks)
  local req, ds, ns, df, nf, worst_f = 0, 0, 0, 0, 0, 0
  local gap = #times > 1 and times[#times] - times[#times - 1] or 1
  for _, task in ipairs(tasks) do
    local k, t = 1, times[1]
    while t < task.ends do
      k = k + 1
      t = times[k] or (t + gap)
    end
    req = req + k
    if task.failed then
      df, nf = df + (t - task.ends), nf + 1
      if t - task.ends > worst_f then worst_f = t - task.ends end
    else
      ds, ns = ds + (t - task.ends), ns + 1
    end
  end
  return { requests_per_task = req / #tasks, mean_delay = (ds + df) / #tasks, ok_delay = ns > 0 and ds / ns or 0,
           fail_delay = nf > 0 and df / nf or 0, fail_worst = worst_f }
end

return M
