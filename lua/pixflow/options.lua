--- pixflow.options: checking option tables: every key known, every value of the right type.
-- Misuse raises "bad argument #N to 'f' (...)" at the caller's level, with a suggestion for a
-- misspelt key.
local M = {}

local function distance(a, b)
  local la, lb = #a, #b
  if math.abs(la - lb) > 3 then return math.huge end
  local prev, cur = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca = a:byte(i)
    for j = 1, lb do
      local cost = (ca == b:byte(j)) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev, cur = cur, prev
  end
  return prev[lb]
end

--- The candidate closest to word, if it is close enough to be a likely typo.
function M.suggest(word, candidates)
  if type(word) ~= "string" then return nil end
  local best, bestd = nil, math.huge
  local lw = word:lower()
  for _, c in ipairs(candidates) do
    local d = distance(lw, c:lower())
    if d < bestd then best, bestd = c, d end
  end
  if best and bestd <= math.max(2, #word // 3) then return best end
  return nil
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end
M.sorted_keys = sorted_keys

local function type_ok(v, want)
  if want == "integer" then return math.type(v) == "integer" end
  if want == "number" then return type(v) == "number" and v == v end
  if want == "any" then return true end
  if type(want) == "table" then
    for _, w in ipairs(want) do if type_ok(v, w) then return true end end
    return false
  end
  return type(v) == want
end

local function type_name(want)
  if type(want) == "table" then return table.concat(want, " or ") end
  return want
end

--- Raise a "bad argument" error at level (counted from the caller of check).
function M.fail(fname, argn, level, fmt, ...)
  error(("bad argument #%d to '%s' (%s)"):format(argn, fname, fmt:format(...)), level + 1)
end

--- Check that t is a table whose keys are all in spec and whose values have spec's types.
-- spec: { key = "string" | "number" | "integer" | "boolean" | "table" | "function" | {...} }
-- prefix names nested tables in messages ("poll.interval"). Returns t.
function M.check(fname, argn, t, spec, level, prefix)
  level = (level or 2) + 1
  prefix = prefix or ""
  if type(t) ~= "table" then
    if prefix ~= "" then
      M.fail(fname, argn, level, "field '%s' must be a table, got %s", prefix:sub(1, -2), type(t))
    end
    M.fail(fname, argn, level, "table expected, got %s", t == nil and "no value" or type(t))
  end
  for k, v in pairs(t) do
    local want = spec[k]
    if want == nil then
      local hint = M.suggest(k, sorted_keys(spec))
      M.fail(fname, argn, level, "unknown field '%s%s'%s", prefix, tostring(k),
             hint and ("; did you mean '" .. prefix .. hint .. "'?") or
             ("; known fields: " .. table.concat(sorted_keys(spec), ", ")))
    end
    if not type_ok(v, want) then
      M.fail(fname, argn, level, "field '%s%s' must be %s, got %s", prefix, k, type_name(want),
             math.type(v) == "float" and "a float" or type(v))
    end
  end
  return t
end

return M
