-- check.lua: the Lua tests' assertion helper (the counterpart of tests/check.h).
--
--   local T = require "check"
--   T.test("alloc gives a zeroed buffer", function() T.eq(ohm.alloc(4):readu32(0), 0) end)
--   T.done()   -- prints "N passed, N failed", closes the state (finalizers run) and exits non-zero on failure
--
-- A failed check raises inside its test, which stops that test only; T.test prints "ok NAME" or "FAIL NAME"
-- with the message and the traceback.
local T = { passed = 0, failed = 0 }

local function fail(msg, level)
  error(msg, (level or 1) + 2)
end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

function T.test(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    T.passed = T.passed + 1
    print("ok " .. name)
  else
    T.failed = T.failed + 1
    print("FAIL " .. name)
    io.stderr:write(tostring(err), "\n")
  end
end

-- A test that cannot run in this configuration: said, not counted.
function T.skip(name, why)
  print("skip " .. name .. " (" .. why .. ")")
end

-- A test that runs a child interpreter (io.popen, so /bin/sh): fn(interp) gets the interpreter running this
-- file, which the child inherits with LUA_CPATH and LD_PRELOAD. Skipped where /bin/sh cannot start: dash
-- crashes at start with the TSan runtime preloaded.
function T.child_test(name, fn)
  if (os.getenv("LD_PRELOAD") or ""):find("tsan", 1, true) then
    return T.skip(name, "the TSan runtime is preloaded and /bin/sh cannot start with it")
  end
  T.test(name, function()
    local interp = arg and arg[-1]
    T.ok(interp, "the interpreter running this file (arg[-1])")
    fn(interp)
  end)
end

function T.ok(v, msg)
  if not v then fail("expected a true value" .. (msg and (": " .. msg) or "")) end
  return v
end

function T.eq(got, want, msg)
  if got ~= want and not (got ~= got and want ~= want) then -- NaN equals NaN here
    fail(string.format("expected %s, got %s%s", show(want), show(got), msg and (" (" .. msg .. ")") or ""))
  end
end

-- The error raised by fn(...) must contain every plain substring given in `wants` (a string or a list).
function T.raises(wants, fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then fail("expected an error containing " .. show(wants) .. ", but the call succeeded") end
  err = tostring(err)
  for _, want in ipairs(type(wants) == "table" and wants or { wants }) do
    if not err:find(want, 1, true) then
      fail(string.format("expected an error containing %s, got %s", show(want), show(err)))
    end
  end
  return err
end

-- fn(...) must return nil, message, code (a runtime failure) with the given code and, optionally, a message
-- containing `want`.
function T.fails(code, want, fn, ...)
  local ok, a, msg, got = pcall(fn, ...)
  if not ok then fail("expected nil, message, " .. code .. "; the call raised " .. show(a)) end
  if a ~= nil then fail("expected nil, message, " .. code .. "; got " .. show(a)) end
  if got ~= code then fail(string.format("expected code %s, got %s (%s)", code, show(got), show(msg))) end
  if type(msg) ~= "string" then fail("expected a message string, got " .. show(msg)) end
  if want and not msg:find(want, 1, true) then
    fail(string.format("expected a message containing %s, got %s", show(want), show(msg)))
  end
  return msg
end

function T.gc()
  collectgarbage()
  collectgarbage()
end

function T.done()
  print(string.format("%d passed, %d failed", T.passed, T.failed))
  io.stdout:flush()
  -- close = true: lua_close runs every finalizer, so the module tears down (and a sanitizer checks it).
  os.exit(T.failed == 0 and 0 or 1, true)
end

return T
