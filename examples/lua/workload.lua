-- An ohm-stress Lua workload: a request path that parses a message into buffers, keeps a per-thread cache
-- across iterations, and releases everything else. LEAK=1 in the environment plants a leak: one buffer in
-- every 1000 iterations is never released, on the line marked below.
--
--   build/stress/ohm-stress --lua examples/lua/workload.lua --threads 4 --duration 10
--   LEAK=1 build/stress/ohm-stress --lua examples/lua/workload.lua --iterations 5000 --json
local ohm = require "ohm"

local plant = os.getenv("LEAK") == "1"
local message = string.rep("header:value\r\n", 8) .. "\r\nbody"

local W = {}

function W.setup(ctx)
  -- made before the first iteration, outside every scope: never an iteration's leak
  ctx.table = ohm.alloc(4096)
end

local function parse(msg)
  local b = ohm.fromstring(msg)
  local cut = b:find("\r\n\r\n")
  local head = b:retainedslice(0, cut)
  local body = b:retainedslice(cut + 4)
  b:release()
  return head, body
end

function W.iteration(ctx)
  local head, body = parse(message)
  local reply = ohm.alloc(#head + #body)
  reply:copy(0, head)
  reply:copy(#head, body)
  head:release()
  body:release()
  if ctx.iteration % 100 == 1 then
    -- a buffer the thread keeps across iterations: handed to ctx:keep, released by teardown
    if ctx.cached then ctx.cached:release() end
    ctx.cached = ctx:keep(ohm.alloc(256))
  end
  if plant and ctx.iteration % 1000 == 0 then
    ctx.forgotten = ohm.alloc(64) -- PLANTED LEAK
  end
  reply:release()
end

function W.teardown(ctx)
  if ctx.cached then ctx.cached:release() end
  ctx.table:release()
end

return W
