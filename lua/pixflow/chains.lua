--- pixflow.chains: tasks that extend others. A submit whose extend_from task has not succeeded
-- yet makes a held task (its files checked and hashed, no intent yet); the source's client keeps
-- it here until the source ends, then sends it with the source's id, or gives it up.
local M = {}

--- Hold task (made by client from the normalised request norm and the submit's opts) until
-- source ends. The source's own client keeps the list (its pump sees the source end).
function M.hold(source, client, task, norm, opts)
  local chains = source:_owner()._chains
  chains[source] = chains[source] or {}
  table.insert(chains[source], { client = client, task = task, norm = norm, opts = opts })
end

-- A task that others extend has ended: send them (with its id), or give them up.
local function settle(client, source)
  local deps = client._chains[source]
  if not deps or not (source.done or source.halted) then return end
  client._chains[source] = nil
  for _, d in ipairs(deps) do
    if source.status == "succeeded" then
      d.norm.extend_from = source.id
      d.task:_release(source.id, d.client:_intent(d.norm, d.opts))   -- a failure ends d.task
      if d.task.journal_key then d.client._by_key[d.task.journal_key] = d.task end
    else
      d.task:_abandon(("the task it extends (%s) ended %s"):format(tostring(source.id), source.status))
    end
  end
end

--- After a pump of client: settle the chains of the tasks that changed.
function M.settle(client, changed)
  if next(client._chains) then
    for _, task in ipairs(changed) do settle(client, task) end
  end
end

return M
