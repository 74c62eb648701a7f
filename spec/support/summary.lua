-- spec/support/summary.lua: busted's terminal output, then one closing line
-- "N passed, N failed, N skipped" that CI reads (errors count as failures).
return function(options)
  local busted = require "busted"
  local ok, base = pcall(require, "busted.outputHandlers.utfTerminal")
  if not ok then base = require "busted.outputHandlers.plainTerminal" end
  local handler = base(options)
  busted.subscribe({ "suite", "end" }, function()
    io.write(("%d passed, %d failed, %d skipped\n"):format(handler.successesCount,
      handler.failuresCount + handler.errorsCount, handler.pendingsCount))
    io.flush()
    return nil, true
  end)
  return handler
end
