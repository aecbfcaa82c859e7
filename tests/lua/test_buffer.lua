-- Buffers: every promise of the Luau-style API (methods and functions), slices, reference counts, <close>,
-- and the metamethods.
local T = require "check"
local ohm = require "ohm"

local function bytes(b)
  local t = {}
  for i = 0, #b - 1 do t[#t + 1] = string.format("%02x", b:readu8(i)) end
  return table.concat(t, " ")
end

T.test("alloc gives a zero-filled buffer of the size asked", function()
  for _, n in ipairs { 0, 1, 7, 64, 1000, 4096, 100000 } do
    local b <close> = ohm.alloc(n)
    T.eq(#b, n)
    T.eq(b:len(), n)
    T.eq(ohm.len(b), n)
    if n > 0 then
      T.eq(b:readu8(0), 0)
      T.eq(b:readu8(n - 1), 0)
      T.eq(b:find("\1"), nil, "no nonzero byte")
    end
  end
end)

T.test("create is alloc (Luau's name)", function()
  local b <close> = ohm.create(8)
  T.eq(#b, 8)
  T.ok(ohm.isbuffer(b))
end)

T.test("alloc{zero = false} and alloc{pool = p}", function()
  local p <close> = ohm.pool { name = "t" }
  local b <close> = ohm.alloc(32, { zero = false, pool = p })
  T.eq(#b, 32)
  T.eq(p:stats().active_blocks, 1)
  b:release()
  T.eq(p:stats().active_blocks, 0)
end)

T.test("fromstring copies and tostring gives the bytes back", function()
  local s = "hello\0world\255"
  local b <close> = ohm.fromstring(s)
  T.eq(#b, #s)
  T.eq(b:tostring(), s)
  T.eq(ohm.tostring(b), s)
  T.eq(ohm.fromstring(""):tostring(), "")
end)

T.test("isbuffer tells buffers from anything else", function()
  T.ok(ohm.isbuffer(ohm.alloc(1)))
  for _, v in ipairs { 1, "x", {}, io.stdout, print, true } do T.eq(ohm.isbuffer(v), false) end
  T.eq(ohm.isbuffer(nil), false)
end)

T.test("little-endian by default, big-endian with the be suffix", function()
  local b <close> = ohm.alloc(8)
  b:writeu32(0, 0x01020304)
  T.eq(bytes(b:slice(0, 4)), "04 03 02 01")
  b:writeu32be(4, 0x01020304)
  T.eq(bytes(b:slice(4, 4)), "01 02 03 04")
  T.eq(b:readu32be(0), 0x04030201)
  T.eq(b:readu16(4), 0x0201)
  T.eq(b:readu16be(4), 0x0102)
  b:writeu64be(0, 0x0102030405060708)
  T.eq(bytes(b), "01 02 03 04 05 06 07 08")
  T.eq(b:readu64(0), 0x0807060504030201)
end)

T.test("every typed access round-trips, as method and as function", function()
  local b <close> = ohm.alloc(32)
  local cases = {
    { "i8", -128 }, { "i8", 127 }, { "u8", 255 }, { "i16", -32768 }, { "u16", 65535 },
    { "i32", -2147483648 }, { "u32", 4294967295 }, { "i64", math.mininteger }, { "i64", math.maxinteger },
    { "u64", -1 }, { "f32", 1.5 }, { "f32", -0.25 }, { "f64", math.pi }, { "f64", -1e300 },
    { "i16be", -2 }, { "u16be", 0xabcd }, { "i32be", -123456 }, { "u32be", 0xdeadbeef },
    { "i64be", -987654321012 }, { "u64be", 0x7fffffffffffffff }, { "f32be", 3.25 }, { "f64be", 1 / 3 },
  }
  for _, c in ipairs(cases) do
    local t, v = c[1], c[2]
    for off = 0, 8, 3 do -- unaligned offsets too
      b["write" .. t](b, off, v)
      T.eq(b["read" .. t](b, off), v, t .. " method at " .. off)
      ohm["write" .. t](b, off + 1, v)
      T.eq(ohm["read" .. t](b, off + 1), v, t .. " function at " .. (off + 1))
    end
  end
end)

T.test("integer writes truncate to the width (two's complement, as Luau)", function()
  local b <close> = ohm.alloc(8)
  b:writeu8(0, 256 + 7)
  T.eq(b:readu8(0), 7)
  b:writei8(0, 255)
  T.eq(b:readi8(0), -1)
  T.eq(b:readu8(0), 255)
  b:writeu16(0, -1)
  T.eq(b:readu16(0), 65535)
  b:writei32(0, 0x180000000)
  T.eq(b:readi32(0), -2147483648)
  b:writeu32(0, -1)
  T.eq(b:readu32(0), 4294967295)
end)

T.test("64-bit integers: u64 wraps into Lua's signed integers, i64 keeps the sign", function()
  local b <close> = ohm.alloc(8)
  b:writeu64(0, -1)
  T.eq(b:readu64(0), -1)
  T.eq(b:readi64(0), -1)
  T.eq(b:readu32(0), 0xffffffff)
  b:writei64(0, math.mininteger)
  T.eq(b:readu8(7), 0x80)
  T.eq(b:readi64(0), math.mininteger)
  T.eq(math.type(b:readu64(0)), "integer")
end)

T.test("floats: f32 rounds, f64 is exact, infinities and NaN survive", function()
  local b <close> = ohm.alloc(8)
  b:writef32(0, 0.1)
  T.ok(b:readf32(0) ~= 0.1 and math.abs(b:readf32(0) - 0.1) < 1e-7)
  b:writef64(0, 0.1)
  T.eq(b:readf64(0), 0.1)
  b:writef64(0, math.huge)
  T.eq(b:readf64(0), math.huge)
  b:writef32(0, -math.huge)
  T.eq(b:readf32(0), -math.huge)
  b:writef64(0, 0 / 0)
  local nan = b:readf64(0)
  T.ok(nan ~= nan)
  b:writef32(0, 3) -- an integer value is accepted for a float
  T.eq(b:readf32(0), 3.0)
end)

T.test("readbits/writebits: Luau's bit order, across bytes, up to 64 bits", function()
  local b <close> = ohm.alloc(16)
  b:writeu8(0, 0xb4) -- 1011 0100
  T.eq(b:readbits(2, 3), 5)
  T.eq(ohm.readbits(b, 0, 8), 0xb4)
  T.eq(b:readbits(0, 0), 0)
  b:writebits(6, 4, 0xf) -- bits 6..9: top two of byte 0, low two of byte 1
  T.eq(b:readu8(0), 0xf4)
  T.eq(b:readu8(1), 0x03)
  b:fill(0, 0)
  b:writebits(3, 64, -1)
  T.eq(b:readbits(3, 64), -1)
  T.eq(b:readu8(0), 0xf8)
  T.eq(b:readu8(8), 0x07)
  T.eq(b:readbits(0, 3), 0)
  ohm.writebits(b, 100, 20, 0xabcde)
  T.eq(b:readbits(100, 20), 0xabcde)
  T.eq(b:readbits(100, 28), 0xabcde) -- the bits beyond are still 0
end)

T.test("readstring/writestring with and without count", function()
  local b <close> = ohm.alloc(16)
  b:writestring(2, "abcdef")
  T.eq(b:readstring(2, 6), "abcdef")
  b:writestring(0, "XYZ", 2)
  T.eq(b:readstring(0, 4), "XYab") -- only 2 of "XYZ"
  T.eq(b:readstring(5, 0), "")
  ohm.writestring(b, 10, "\0\1\2")
  T.eq(ohm.readstring(b, 10, 3), "\0\1\2")
end)

T.test("copy: between buffers, overlapping, with default offset and count", function()
  local a <close> = ohm.fromstring("0123456789")
  local b <close> = ohm.alloc(12)
  b:copy(1, a) -- all of a
  T.eq(b:readstring(1, 10), "0123456789")
  ohm.copy(b, 0, a, 7) -- from 7 to the end
  T.eq(b:readstring(0, 3), "789")
  a:copy(2, a, 0, 5) -- overlapping, forward
  T.eq(a:tostring(), "0101234789")
  a:copy(0, a, 3, 5) -- overlapping, backward
  T.eq(a:tostring(), "1234734789")
end)

T.test("fill: a byte value (truncated), default count to the end", function()
  local b <close> = ohm.alloc(8)
  b:fill(2, 0x1ab) -- truncated to 0xab, to the end
  T.eq(bytes(b), "00 00 ab ab ab ab ab ab")
  ohm.fill(b, 0, 1, 3)
  T.eq(bytes(b), "01 01 01 ab ab ab ab ab")
  b:fill(8, 7) -- an empty range at the end
end)

T.test("find, compare, equals", function()
  local b <close> = ohm.fromstring("abcabcxyz")
  T.eq(b:find("abc"), 0)
  T.eq(b:find("abc", 1), 3)
  T.eq(b:find("xyz"), 6)
  T.eq(b:find("abc", 4), nil)
  T.eq(b:find("c", 0, 2), nil) -- within [0, 2)
  T.eq(b:find(""), 0)
  local c <close> = ohm.fromstring("abcabcxyz")
  local d <close> = ohm.fromstring("abd")
  T.eq(b:compare(c), 0)
  T.ok(b:equals(c))
  T.eq(ohm.compare(b, d), -1)
  T.eq(d:compare(b), 1)
  T.eq(ohm.fromstring("ab"):compare(ohm.fromstring("abc")), -1) -- shorter first
  T.eq(b:equals(d), false)
end)

T.test("slices share memory; a plain slice shares the count", function()
  local b = ohm.alloc(16)
  local s = b:slice(4, 8)
  T.eq(#s, 8)
  s:writeu32(0, 0xcafebabe)
  T.eq(b:readu32(4), 0xcafebabe)
  b:writeu8(11, 9)
  T.eq(s:readu8(7), 9)
  T.eq(s:refcount(), 1)
  s:retain()
  T.eq(b:refcount(), 2)
  T.eq(b:release(), false)
  T.eq(s:release(), true) -- the shared count reaches 0: the memory is freed
  T.eq(b:refcount(), 0)
  T.raises("released", b.readu8, b, 0)
  T.raises("released", s.readu8, s, 0)
  local t = ohm.alloc(8)
  local whole = t:slice(0) -- to the end
  T.eq(#whole, 8)
  T.eq(#t:slice(3), 5)
  t:release()
end)

T.test("a retained slice has its own count and keeps its parent's memory", function()
  local b = ohm.fromstring("abcdefgh")
  local r = b:retainedslice(2, 4)
  T.eq(r:refcount(), 1)
  T.eq(b:refcount(), 2) -- the slice holds one reference on its parent
  T.eq(b:release(), false)
  T.eq(r:tostring(), "cdef") -- still readable
  T.eq(r:release(), true)
  T.eq(b:refcount(), 0)
  local c = ohm.alloc(4)
  local whole = c:retainedslice()
  T.eq(#whole, 4)
  whole:release()
  c:release()
end)

T.test("retain/release/refcount follow Netty's rules", function()
  local b = ohm.alloc(4)
  T.eq(b:refcount(), 1)
  T.eq(b:retain(), b) -- returns the buffer
  T.eq(ohm.retain(b, 3), b)
  T.eq(b:refcount(), 5)
  T.eq(b:release(4), false)
  T.eq(b:refcount(), 1)
  T.eq(ohm.release(b), true)
  T.eq(b:refcount(), 0)
end)

T.test("<close> releases at the end of the scope; close is idempotent", function()
  local outer
  do
    local b <close> = ohm.alloc(10)
    outer = b
    T.eq(b:refcount(), 1)
  end
  T.eq(outer:refcount(), 0)
  local c = ohm.alloc(1)
  c:close()
  c:close() -- a second close does nothing
  T.eq(c:refcount(), 0)
  do
    local d <close> = ohm.alloc(1)
    d:release() -- released by hand: the scope's close does nothing
  end
  local e = ohm.alloc(1)
  e:retain()
  e:close() -- one reference
  T.eq(e:refcount(), 1)
  e:release()
end)

T.test("<close> releases when the scope is left by an error too", function()
  local keep
  local ok = pcall(function()
    local b <close> = ohm.alloc(10)
    keep = b
    error("leaving")
  end)
  T.eq(ok, false)
  T.eq(keep:refcount(), 0)
end)

T.test("__len, __tostring, __eq (same memory, not same content)", function()
  local b <close> = ohm.alloc(64)
  T.eq(#b, 64)
  T.ok(tostring(b):match("^ohm%.buffer%(64%): 0x%x+$") or tostring(b):match("^ohm%.buffer%(64%): %x+$"), tostring(b))
  T.ok(b == b:slice(0, 64), "a whole slice is the same memory")
  T.ok(b ~= b:slice(0, 32))
  local c <close> = ohm.alloc(64)
  T.ok(b ~= c)
  T.ok(b:equals(c), "same content")
  local d = ohm.alloc(1)
  d:release()
  T.eq(tostring(d), "ohm.buffer(released)")
  T.ok(d == d)
  T.ok(d ~= b)
  T.ok(b ~= 1 and b ~= "x")
end)

T.test("a zero-length buffer works everywhere a length does", function()
  local b <close> = ohm.alloc(0)
  T.eq(#b, 0)
  T.eq(b:tostring(), "")
  T.eq(b:readstring(0, 0), "")
  b:fill(0, 1)
  b:writestring(0, "")
  T.eq(#b:slice(0, 0), 0)
  T.raises("buffer access out of bounds", b.readu8, b, 0)
end)

T.test("address and offsetof map pointers into the buffer", function()
  local b <close> = ohm.alloc(32)
  local p = b:address(8)
  T.eq(type(p), "userdata")
  T.eq(b:offsetof(p), 8)
  T.eq(b:offsetof(b:address()), 0)
  T.eq(b:offsetof(b:address(32)), 32)
  T.raises("not inside", b.offsetof, b, ohm.alloc(8):address())
end)

T.test("id, origin, touch, tracked", function()
  local b <close> = ohm.alloc(8)
  T.ok(b:id() > 0)
  T.eq(b:origin(), "pool")
  T.eq(b:touch("hint"), b)
  T.eq(type(b:tracked()), "boolean")
  local c = ohm.alloc(8)
  c:release()
  T.eq(c:id(), 0)
end)

T.test("buffers are collected: unreferenced buffers go back to the pool", function()
  local p = ohm.pool()
  T.gc()
  local before = p:stats().active_blocks
  for _ = 1, 1000 do ohm.alloc(100) end
  T.gc()
  T.eq(p:stats().active_blocks, before)
end)

T.test("ohm.errors lists which failures raise and which return", function()
  T.eq(ohm.errors.EINVAL, true)
  T.eq(ohm.errors.ERANGE, true)
  T.eq(ohm.errors.ESTATE, true)
  T.eq(ohm.errors.ENOMEM, false)
  T.eq(ohm.errors.ECALLBACK, false)
  T.eq(type(ohm.version()), "string")
end)

T.done()
