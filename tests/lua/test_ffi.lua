-- The libffi bridge from Lua: zlib's crc32 over a buffer (checked against a CRC-32 computed in Lua), qsort
-- with a Lua comparator sorting a buffer in place, closures that fail, every misuse (wrong sign or width for
-- every integer type, strings and read-only buffers for writable pointers, released buffers, nil for numbers):
-- each a Lua error naming the argument, the state usable afterwards, and nothing on stderr.
local T = require "check"
local ohm = require "ohm"
local child_mode = arg and arg[1] == "misuse-child"

local z = ohm.ffi.load("libz.so.1")
local libc = ohm.ffi.load() -- the process itself (libc is in it)
local libm = ohm.ffi.load("libm.so.6")

-- CRC-32 (IEEE, reflected), the reference for zlib's crc32.
local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if c & 1 == 1 then c = 0xEDB88320 ~ (c >> 1) else c = c >> 1 end
  end
  crc_table[i] = c
end
local function lua_crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = crc_table[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
  return c ~ 0xFFFFFFFF
end

-- The misuse rows, run here and again in a child interpreter whose stderr must stay empty.
local function misuse_rows()
  local memset = libc:func("memset", "ptr(ptr, int, size)")
  local b <close> = ohm.alloc(16)
  local function usable() -- after each refused call, the state and the buffer still work
    T.eq(memset(b, 0x61, 16) ~= nil, true)
    T.eq(b:readstring(0, 2), "aa")
  end
  local msg = T.raises("memset: argument 3 (u64) out of range: -1", memset, b, 0, -1)
  T.eq(msg, "memset: argument 3 (u64) out of range: -1", "the function named once")
  T.eq(b:readu8(0), 0, "nothing was written")
  usable()
  T.raises("memset: argument 3 (u64) out of range: -9223372036854775808", memset, b, 0, math.mininteger)
  T.raises("memset: argument 3 (u64) out of range: -1", memset, b, 0, -1.0)
  T.raises("memset: argument 3 (u64) out of range: 18446744073709551616", memset, b, 0, 2.0 ^ 64)
  T.raises("memset: argument 2 (i32) out of range: 2147483648", memset, b, 1 << 31, 1)
  T.raises("memset: argument 1 is ptr (writable), got a string", memset, "abc", 0, 1)
  T.raises("memset: argument 3 is u64, got null", memset, b, 0, nil)
  T.raises("memset: argument 2 is i32, got a string", memset, b, "0", 1)
  T.raises("cannot pass a table", memset, b, {}, 1)
  usable()
  -- every integer type, through a closure cast back to a function: refused before the closure could run
  local ran = false
  local rows = {
    { "u8", -1, 256 }, { "i8", -129, 128 }, { "u16", -1, 65536 }, { "i16", -32769, 32768 },
    { "u32", -1, 1 << 32 }, { "i32", -(1 << 31) - 1, 1 << 31 }, { "u64", -1, 2.0 ^ 64 },
    { "i64", -2.0 ^ 63 * 2, 2.0 ^ 63 }, { "bool", -1, 256 },
  }
  for _, r in ipairs(rows) do
    local ty = r[1] == "bool" and "u8" or r[1]
    local c = ohm.ffi.closure("void(" .. r[1] .. ")", function() ran = true end)
    local f = ohm.ffi.cast("void(" .. r[1] .. ")", c)
    T.raises("argument 1 (" .. ty .. ") out of range", f, r[2])
    T.raises("argument 1 (" .. ty .. ") out of range", f, r[3])
    T.raises("argument 1 (" .. ty .. ") is not a whole number: 0.5", f, 0.5)
    T.raises("argument 1 is " .. ty .. ", got null", f, nil)
    T.raises("argument 1 is " .. ty .. ", got a buffer", f, b)
    f(1) -- in range: runs
  end
  T.ok(ran)
  for _, ty in ipairs({ "f32", "f64" }) do
    local f = ohm.ffi.cast("void(" .. ty .. ")", ohm.ffi.closure("void(" .. ty .. ")", function() end))
    T.raises("argument 1 is " .. ty .. ", got null", f, nil)
    T.raises("argument 1 is " .. ty .. ", got a string", f, "1.5")
    T.raises("argument 1 is " .. ty .. ", got a buffer", f, b)
    T.raises("cannot pass a table", f, {})
    f(-3) -- an integer by its value
  end
  T.raises("argument 1 (f32) out of range: 1e+39",
    ohm.ffi.cast("void(f32)", ohm.ffi.closure("void(f32)", function() end)), 1e39)
  -- read-only buffers: a read-only mapping, shared memory opened read-only, a sealed mapping
  local path = string.format("%s/ohm-lua-ffi-%d-%d.bin", os.getenv("TMPDIR") or "/tmp", os.time(),
    math.random(1 << 30))
  do
    local w <close> = ohm.mapfile(path, { length = 4096, create = true })
    w:writestring(0, "read-only words\0")
  end
  local shm_name = string.format("/ohm-lua-ffi-%d-%d", os.time(), math.random(1 << 30))
  local shm_w <close> = ohm.shm.create(shm_name, 4096)
  shm_w:writestring(0, "shared words\0")
  local sealed <close> = ohm.mapfile(path, { write = true })
  sealed:seal()
  local crc32c = z:func("crc32", "u64(u64, cptr, u32)")
  local memchr = libc:func("memchr", "cptr(cptr, int, size)")
  local strlen = libc:func("strlen", "size(str)")
  local mapping <close> = ohm.mapfile(path)
  local shm_r <close> = ohm.shm.open(shm_name)
  for what, ro in pairs({ mapping = mapping, shm = shm_r, sealed = sealed }) do
    local before = ro:readstring(0, 8)
    local text = ro:readstring(0, 16)
    T.raises("memset: argument 1 is ptr (writable), got a read-only buffer; declare it cptr", memset, ro, 0, 1)
    T.raises("got a read-only buffer; declare it cptr", memset, ro:slice(1, 4), 0, 1)
    T.eq(ro:readstring(0, 8), before, what .. " unchanged")
    T.eq(crc32c(0, ro, 8), lua_crc32(before), what .. " through cptr")
    T.eq(strlen(ro), #text:match("^[^%z]*"), what .. " through str")
    T.eq(ro:offsetof(memchr(ro, string.byte("w"), 16)), text:find("w", 1, true) - 1, what .. ": a cptr result")
  end
  sealed:seal(false)
  T.eq(memset(sealed, 0x52, 1) ~= nil, true, "unsealed: writable again")
  ohm.shm.unlink(shm_name)
  os.remove(path)
  -- released buffers, for every pointer type
  for _, sig in ipairs({ "void(ptr)", "void(cptr)", "void(str)" }) do
    local f = ohm.ffi.cast(sig, ohm.ffi.closure(sig, function() end))
    local dead = ohm.alloc(8)
    dead:release()
    T.raises("cast: argument 1: buffer was released", f, dead)
    f(nil) -- NULL is C's to judge
  end
  usable()
end

if child_mode then
  misuse_rows()
  io.write("misuse rows done\n")
  os.exit(0, true)
end

T.test("zlib crc32 over a buffer, zero-copy, matches a CRC-32 computed in Lua", function()
  local crc32 = z:func("crc32", "u64(u64, ptr, u32)")
  T.eq(crc32:name(), "crc32")
  local s = "hello"
  local b <close> = ohm.fromstring(s)
  T.eq(crc32(0, b, #b), 907060870)
  T.eq(crc32(0, b, #b), lua_crc32(s))
  local big <close> = ohm.alloc(100000)
  for i = 0, #big - 8, 8 do big:writeu64(i, i * 0x9E3779B97F4A7C15) end
  T.eq(crc32(0, big, #big), lua_crc32(big:tostring()))
  T.eq(crc32(0, big:slice(10, 1000), 1000), lua_crc32(big:readstring(10, 1000)), "a slice passes its offset")
  T.raises("crc32: argument 2 is ptr (writable), got a string", crc32, 0, "hello", 5)
  local crc32c = z:func("crc32", "u64(u64, cptr, u32)")
  T.eq(crc32c(0, "hello", 5), 907060870, "a Lua string for a cptr parameter")
  T.eq(crc32(0, nil, 0), 0, "nil is NULL")
end)

T.test("qsort sorts a buffer in place with a Lua comparator", function()
  local qsort = libc:func("qsort", "void(ptr, size, size, ptr)")
  local n = 500
  local arr <close> = ohm.alloc(n * 4)
  local ref = {}
  local x = 12345
  for i = 0, n - 1 do
    x = (x * 1103515245 + 12345) % 2147483648
    local v = x % 100000 - 50000
    arr:writei32(i * 4, v)
    ref[#ref + 1] = v
  end
  local calls = 0
  local cmp = ohm.ffi.closure("int(ptr, ptr)", function(pa, pb)
    calls = calls + 1
    local a, b = arr:readi32(arr:offsetof(pa)), arr:readi32(arr:offsetof(pb))
    return a < b and -1 or (a > b and 1 or 0)
  end)
  T.eq(qsort(arr, n, 4, cmp), nil) -- void: nothing
  table.sort(ref)
  for i = 0, n - 1 do T.eq(arr:readi32(i * 4), ref[i + 1], "element " .. i) end
  T.ok(calls >= n - 1)
end)

T.test("a closure that raises: the C caller gets 0, the call returns nil, message, ECALLBACK", function()
  local qsort = libc:func("qsort", "void(ptr, size, size, ptr)")
  local arr <close> = ohm.alloc(40)
  for i = 0, 9 do arr:writei32(i * 4, 10 - i) end
  local calls = 0
  local bad = ohm.ffi.closure("int(ptr, ptr)", function()
    calls = calls + 1
    error("comparator boom")
  end)
  local msg = T.fails("ECALLBACK", "comparator boom", qsort, arr, 10, 4, bad)
  T.ok(msg:find("qsort", 1, true), msg)
  T.eq(calls, 1, "after the first failure the closure is not run again in that call")
  local wrong = ohm.ffi.closure("int(ptr, ptr)", function() return "a string" end)
  T.fails("ECALLBACK", "returning an integer", qsort, arr, 10, 4, wrong)
  local out_of_range = ohm.ffi.closure("int(ptr, ptr)", function() return 1 << 40 end)
  -- a value the C type cannot hold is a programmer error (EINVAL): raised, once qsort has returned
  T.raises("out of range for i32", qsort, arr, 10, 4, out_of_range)
  -- the state is fine: a good comparator sorts
  local good = ohm.ffi.closure("int(ptr, ptr)", function(pa, pb)
    return arr:readi32(arr:offsetof(pa)) - arr:readi32(arr:offsetof(pb))
  end)
  qsort(arr, 10, 4, good)
  for i = 0, 9 do T.eq(arr:readi32(i * 4), i + 1) end
end)

T.test("numbers, strings, pointers and return types", function()
  local strlen = libc:func("strlen", "size(str)")
  T.eq(strlen("hello"), 5)
  local b <close> = ohm.fromstring("abc\0def")
  T.eq(strlen(b), 3, "a buffer for a str parameter")
  local cos = libm:func("cos", "double(double)")
  T.eq(cos(0), 1.0)
  T.ok(math.abs(cos(math.pi) + 1) < 1e-12)
  local abs = libc:func("abs", "int(int)")
  T.eq(abs(-42), 42)
  T.eq(abs(-7.0), 7, "a whole float for an int parameter")
  local getenv = libc:func("getenv", "str(str)")
  T.eq(getenv("OHM_LUA_NO_SUCH_VARIABLE_SET"), nil, "NULL str is nil")
  T.eq(type(getenv("PATH")), "string")
  local memchr = libc:func("memchr", "ptr(ptr, int, size)")
  local p = memchr(b, string.byte("d"), #b)
  T.eq(b:offsetof(p), 4)
  T.eq(memchr(b, string.byte("z"), #b), nil, "NULL ptr is nil")
  local memset = libc:func("memset", "ptr(ptr, int, size)")
  memset(b:address(1), string.byte("Z"), 2) -- a light userdata address
  T.eq(b:readstring(0, 4), "aZZ\0")
  local toupper = libc:func("toupper", "int(int)")
  T.eq(toupper(true), 1, "a boolean is 0 or 1")
end)

T.test("a closure cast back to a function runs in this state", function()
  local add = ohm.ffi.closure("i64(i64, i64)", function(a, b) return a + b end)
  local f = ohm.ffi.cast("i64(i64, i64)", add)
  T.eq(f(40, 2), 42)
  T.eq(f(math.maxinteger, 1), math.mininteger) -- Lua integer arithmetic wraps
  local g = ohm.ffi.cast("i64(i64, i64)", add:address())
  T.eq(g(1, 2), 3)
  T.eq(type(add:ptr()), "userdata")
  local fl = ohm.ffi.closure("f32(f64, u8)", function(x, n) return x * n end)
  T.eq(ohm.ffi.cast("f32(f64, u8)", fl)(1.5, 255), 382.5)
  local v = ohm.ffi.closure("void(u32)", function(x) T.eq(x, 4294967295) end)
  ohm.ffi.cast("void(u32)", v)(4294967295)
end)

T.test("misuse of every parameter type is a Lua error naming the argument; the state stays usable", misuse_rows)

local child_name = "the misuse rows print nothing on stderr (a child interpreter)"
T.child_test(child_name, function(interp)
  local script = arg[0]
  T.ok(script)
  local errfile = os.tmpname()
  local p = assert(io.popen(string.format("%q %q misuse-child 2>%q", interp, script, errfile)))
  local out = p:read("a")
  local ok = p:close()
  local f = assert(io.open(errfile, "rb"))
  local err = f:read("a")
  f:close()
  os.remove(errfile)
  T.ok(ok, "the child exited with success: " .. out .. err)
  T.eq(out, "misuse rows done\n")
  T.eq(err, "", "stderr")
end)

T.test("misuse raises: signatures, argument counts and types, closed libraries, freed closures", function()
  T.raises("ffi.load", ohm.ffi.load, "libohm-no-such-library.so")
  T.raises("expected a type", z.func, z, "crc32", "u64(u64, ptr,")
  T.raises("func", z.func, z, "no_such_symbol_here", "void()")
  local crc32 = z:func("crc32", "u64(u64, ptr, u32)")
  T.raises("expected 3 arguments", crc32, 0, nil)
  T.raises("argument 2", crc32, 0, 12, 5) -- a number for ptr
  T.raises("argument 1", crc32, "x", nil, 0) -- a string for u64
  T.raises("cannot pass a table", crc32, {}, nil, 0)
  T.raises("cannot pass a function", crc32, print, nil, 0)
  local abs = libc:func("abs", "int(int)")
  T.raises("argument 1", abs, 1 << 40) -- out of range for int
  T.raises("argument 1", abs, 1.5)
  local dead = ohm.alloc(4)
  dead:release()
  T.raises("released", crc32, 0, dead, 4)
  T.raises("closure", ohm.ffi.closure, "int(", function() end)
  T.raises("bad argument", ohm.ffi.closure, "int()", 5)
  T.raises("function pointer is NULL", ohm.ffi.cast, "int()", 0)
  local lib = ohm.ffi.load("libz.so.1")
  local f = lib:func("zlibVersion", "str()")
  T.eq(type(f()), "string")
  lib:close()
  T.raises("library was closed", f)
  T.raises("library was closed", lib.func, lib, "crc32", "u64(u64, ptr, u32)")
  local cl = ohm.ffi.closure("int()", function() return 1 end)
  cl:free()
  T.raises("closure was freed", cl.ptr, cl)
  T.raises("closure was freed", crc32, cl, nil, 0)
end)

T.done()
