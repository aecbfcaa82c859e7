-- Leak scopes in a busted suite: how a project's own specs fail on a buffer they forgot to release.
local ohm = require "ohm"

describe("ohm leak scopes", function()
  it("pass a spec that releases what it allocates", function()
    assert.has_no.errors(function()
      local s <close> = ohm.leakscope()
      local b = ohm.alloc(128)
      b:writeu32(0, 7)
      b:release()
    end)
  end)

  it("fail a spec that leaks, naming the line", function()
    local kept
    assert.has_error(function()
      ohm.checkleaks(function() kept = ohm.alloc(16) end)
    end)
    local ok, err = pcall(ohm.checkleaks, function() kept:release(); kept = ohm.alloc(16) end)
    assert.is_false(ok)
    assert.truthy(err:find("leakscope_spec.lua:%d+: ohm.buffer of 16 bytes"))
    kept:release()
  end)

  it("return the function's results", function()
    assert.same({ 3, "x" }, { ohm.checkleaks(function(a, b) return a + b, "x" end, 1, 2) })
  end)

  it("do not blame a buffer made before the scope", function()
    local cache = ohm.alloc(8)
    assert.has_no.errors(function() ohm.checkleaks(function() end) end)
    cache:release()
  end)
end)
