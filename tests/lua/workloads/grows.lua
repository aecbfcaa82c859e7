-- Holds on to every buffer until teardown (a leak "released at shutdown"): no iteration leaks, but live bytes
-- grow all run long, which ohm-stress must call steady growth.
local ohm = require "ohm"
local hoard = {}
return {
  iteration = function(ctx) hoard[#hoard + 1] = ctx:keep(ohm.alloc(4096)) end,
  teardown = function() for _, b in ipairs(hoard) do b:release() end end,
}
