-- Leak scopes from Lua: ohm.leakscope() with <close> and ohm.checkleaks(fn, ...) list exactly the buffers made
-- inside and left live, each by its Lua line, whatever the state's level; buffers made outside are not blamed.
local T = require "check"
local ohm = require "ohm"

local this = debug.getinfo(1, "S").short_src
local function line_here() return debug.getinfo(2, "l").currentline end

T.test("a clean scope closes quietly", function()
  ohm.leak.level("off") -- a scope tracks whatever the level
  local s <close> = ohm.leakscope()
  local b = ohm.alloc(64)
  T.ok(b:tracked())
  b:release()
end)

T.test("closing a scope with a live buffer raises, naming the line", function()
  local kept, line
  local ok, err = pcall(function()
    local s <close> = ohm.leakscope()
    ohm.alloc(10):release()
    kept = ohm.alloc(33); line = line_here()
  end)
  T.eq(ok, false)
  T.ok(err:find("1 buffer leaked (33 bytes)", 1, true), err)
  T.ok(err:find(this .. ":" .. line .. ": ohm.buffer of 33 bytes", 1, true), err)
  kept:release()
end)

T.test("a buffer made before the scope is not its leak", function()
  local before = ohm.alloc(8)
  T.eq(ohm.checkleaks(function() return 1 end), 1)
  before:release()
end)

T.test("checkleaks returns fn's results and passes its arguments", function()
  local a, b, c = ohm.checkleaks(function(x, y)
    local t = ohm.alloc(4)
    t:release()
    return x + y, "two", nil
  end, 40, 2)
  T.eq(a, 42)
  T.eq(b, "two")
  T.eq(c, nil)
end)

T.test("checkleaks raises with every leaked buffer's line", function()
  local keep = {}
  local l1, l2
  local ok, err = pcall(ohm.checkleaks, function()
    keep[1] = ohm.alloc(5); l1 = line_here()
    keep[2] = ohm.alloc(6); l2 = line_here()
  end)
  T.eq(ok, false)
  T.ok(err:find("2 buffers leaked (11 bytes)", 1, true), err)
  T.ok(err:find(this .. ":" .. l1 .. ":", 1, true), err)
  T.ok(err:find(this .. ":" .. l2 .. ":", 1, true), err)
  for _, b in ipairs(keep) do b:release() end
end)

T.test("fn's own error goes through checkleaks unchanged", function()
  local ok, err = pcall(ohm.checkleaks, function() error("boom", 0) end)
  T.eq(ok, false)
  T.eq(err, "boom")
  -- and the scope is closed: a new one opens and closes cleanly
  ohm.checkleaks(function() end)
end)

T.test("scopes nest: the inner one's leaks are not the outer's", function()
  local keep
  local ok, err = pcall(function()
    local outer <close> = ohm.leakscope()
    local inner_ok, inner_err = pcall(function()
      local inner <close> = ohm.leakscope()
      keep = ohm.alloc(3)
    end)
    T.eq(inner_ok, false)
    T.ok(inner_err:find("1 buffer leaked", 1, true))
  end)
  T.ok(ok, err) -- the outer scope is clean
  keep:release()
end)

T.test("an unreleased buffer the GC collects inside the scope is listed", function()
  ohm.leak.handler(function() end) -- the reclaim's report goes to a quiet handler
  local ok, err = pcall(ohm.checkleaks, function()
    ohm.alloc(21)
    collectgarbage()
    collectgarbage()
  end)
  ohm.leak.handler(nil)
  T.eq(ok, false)
  T.ok(err:find("garbage-collected unreleased", 1, true), err)
end)

T.test("s:close() and a second close", function()
  local s = ohm.leakscope()
  T.ok(s:id() > 0)
  T.eq(s:close(), 0)
  T.eq(s:id(), 0)
  T.eq(s:close(), nil) -- closed already: nothing
  T.ok(tostring(s):find("closed", 1, true))
end)

T.test("closing an outer scope before an inner one is an error", function()
  local outer = ohm.leakscope()
  local inner = ohm.leakscope()
  local ok, err = pcall(outer.close, outer)
  T.eq(ok, false)
  T.ok(err:find("still open", 1, true), err)
  inner:close()
  T.eq(outer:close(), 0)
end)

T.test("a scope that is never closed ends with its object", function()
  do local s = ohm.leakscope() end
  collectgarbage()
  collectgarbage()
  ohm.checkleaks(function() end) -- a fresh scope opens and closes
end)

T.done()
