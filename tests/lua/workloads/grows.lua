-- Holds on to every buffer until teardown (a leak "released at shutdown"): no iteration leaks, but live bytes
-- grow all run long, which ohm-stress must call steady growth. Each iteration does some work of its own first, so
-- that it keeps a few thousand buffers in a run rather than tens of thousands: the collector's walks over a hoard
-- that large would slow the later iterations several times over, and the growth would no longer be steady.
local ohm = require "ohm"
local hoard = {}
return {
  iteration = function(ctx)
    local sum = 0
    for i = 1, 100000 do sum = sum + i end
    assert(sum > 0)
    hoard[#hoard + 1] = ctx:keep(ohm.alloc(16384))
  end,
  teardown = function() for _, b in ipairs(hoard) do b:release() end end,
}
