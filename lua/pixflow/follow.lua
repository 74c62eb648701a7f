--- pixflow.follow: the one loop that pumps clients until what is being waited for is there.
-- Every wait in pixflow goes through it: task:wait, task:cancel, task:download, pixflow.all and
-- pixflow.race outside a workflow, Flow:wait, resume, batch and the command's `status`.
--
-- follow.loop(spec) is the loop itself: check, deadline, pump, again. A Follower (follow.new)
-- follows a set of tasks over one or more clients until each has ended and, where asked, its
-- file is downloaded; Follower:step(0) does one round without blocking, for a game loop.
local core = require "pixflow.core"

local M = {}

-- The clients of a spec, the first being the one whose poll blocks.
local function clients_of(spec)
  local cs = spec.clients
  if type(cs) == "function" then cs = cs() end
  return cs or {}
end

-- Pump once: every client but the first without waiting, then the first for at most wait
-- seconds (it returns early when a task changed). flows: true (client:poll, which also steps
-- the workflows waiting on the client), false (client:_pump, which does not), or "first" (only
-- the first client steps them).
local function pump(spec, wait)
  local cs = clients_of(spec)
  local flows = spec.flows
  if flows == nil then flows = true end
  for i = 2, #cs do
    if flows == true then cs[i]:poll(0) else cs[i]:_pump(0) end
  end
  local first = cs[1]
  if not first then return end
  if flows == false then first:_pump(wait) else first:poll(wait) end
end
M.pump = pump

--- Pump until spec.check() says the wait is over, or spec.deadline (core.now() seconds) passes.
-- spec: check() -> true, results... when over (else false); deadline (nil: none); expired() ->
-- the results when the deadline passes; clients (a list, or a function giving one; the first
-- one's poll blocks, the others are polled with 0); slice: the longest single poll (default 1);
-- flows (see pump). Returns check's results, or expired's.
function M.loop(spec)
  local slice = spec.slice or 1
  while true do
    local r = table.pack(spec.check())
    if r[1] then return table.unpack(r, 2, r.n) end
    local wait = slice
    if spec.deadline then
      local left = spec.deadline - core.now()
      if left <= 0 then return spec.expired() end
      if left < wait then wait = left end
    end
    pump(spec, wait)
  end
end

-- ------------------------------------------------------------------ following tasks to files

local Follower = {}
local follower_mt = { __name = "pixflow.Follower", __index = Follower }

--- A follower of tasks. opts: deadline (core.now() seconds, or nil), slice (the longest single
-- poll, default 0.25), before(follower) at the start of each round (a batch starts queued work
-- there; it sets follower.busy while work is queued), on_update(item, ended_now) after each
-- item's update in a round, on_step(follower) after each round.
function M.new(opts)
  opts = opts or {}
  return setmetatable({ items = {}, clients = {}, client_seen = {}, deadline = opts.deadline,
                        slice = opts.slice or 0.25, before = opts.before, on_update = opts.on_update,
                        on_step = opts.on_step, flows = opts.flows }, follower_mt)
end

--- Follow task, pumped by client (default: the task's own). fields: output (download the result
-- there once it succeeded), parents (make the output's missing directories first), at (the
-- item's place among the items: they are updated in that order), and any fields of the
-- caller's (kept in the item). Returns the item: { task, client, output, ended, status, error,
-- path, downloading, failed_download }.
function Follower:add(task, fields)
  local item = fields or {}
  item.task = task
  item.client = item.client or task:_owner()
  local items = self.items
  local pos = #items + 1
  if item.at then
    while pos > 1 and items[pos - 1].at and items[pos - 1].at > item.at do pos = pos - 1 end
  end
  table.insert(items, pos, item)
  self:watch(item.client)
  return item
end

--- Pump client too (its tasks come later, or what else it runs must go on meanwhile).
function Follower:watch(client)
  if client and not self.client_seen[client] then
    self.client_seen[client] = true
    self.clients[#self.clients + 1] = client
  end
end

--- Move item on: start its download once its task succeeded, see whether it has ended.
-- Returns true when it has ended (now or before), and whether it ended now.
function Follower:update(item)
  if item.ended then return true, false end
  local t = item.task
  local status, err
  if item.output and t.status == "succeeded" and not item.downloading then
    item.downloading = true
    local ok, derr = true, nil
    if item.parents then ok, derr = core.make_parents(item.output) end  -- a manifest may name new directories
    if ok then ok, derr = item.client:_start_download(t, item.output) end
    if not ok then status, err = "failed", derr end
  end
  if status then
    -- the download could not start
  elseif item.downloading then
    local state, derr = t:_download_state()
    if state == "done" then
      item.path, status = t.path, "downloaded"
    elseif state == "failed" then
      item.failed_download, status, err = true, "failed", derr
    end
  elseif t.done or t.halted then
    status, err = t.status, t.error
    -- attached by id while another live process follows it (the journal's claim): left to it
    if t.halted and err and err.code == "claimed" then status = "claimed" end
  end
  if status then item.ended, item.status, item.error = true, status, err end
  return item.ended, item.ended
end

--- One round: before(), every item updated (on_update after each), on_step(). Returns true when
-- every item has ended and nothing is queued (follower.busy).
function Follower:round()
  if self.before then self.before(self) end
  local all = true
  for _, item in ipairs(self.items) do
    local ended, now = self:update(item)
    if not ended then all = false end
    if self.on_update and not (ended and not now) then self.on_update(item, now) end
  end
  if self.on_step then self.on_step(self) end
  return all and not self.busy
end

--- One round, then (if something is still open) one pump of at most timeout seconds (0: return
-- at once, for a game loop). Returns true when every item has ended.
function Follower:step(timeout)
  if self:round() then return true end
  pump(self, timeout or 0)
  return false
end

--- Follow until every item has ended (true), or the deadline passes first (false).
function Follower:run()
  return M.loop{ check = function() if self:round() then return true, true end return false end,
                 deadline = self.deadline, expired = function() return false end,
                 clients = self.clients, slice = self.slice, flows = self.flows }
end

return M
