-- Holds 1 MiB of a memory manager's execution memory through the run (released at teardown), and acquires and
-- releases a little more in each iteration: ohm-stress's "Memory manager" chart must show the 1 MiB.
local ohm = require "ohm"
local mm, task
return {
  setup = function()
    mm = ohm.mm{ on_heap = 64 << 20 }
    task = mm:task()
    task:acquire(1 << 20, "on_heap")
  end,
  iteration = function()
    task:acquire(4096, "on_heap")
    task:release(4096, "on_heap")
  end,
  teardown = function()
    task:release(1 << 20, "on_heap")
    task:close()
    mm:close()
  end,
}
