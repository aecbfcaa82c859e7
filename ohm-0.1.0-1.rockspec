-- The Lua module as a rock: `luarocks --lua-version 5.4 make` (at the repository's root) builds ohm.so with CMake
-- and installs it; `luarocks --lua-version 5.4 test` runs tests/lua (see lua/README.md).
rockspec_format = "3.0"
package = "ohm"
version = "0.1.0-1"
source = {
   url = "git+file://.",
}
description = {
   summary = "Off-heap buffers, pools, leak detection and a memory manager for Lua 5.4 (the Luau buffer API)",
   detailed = [[
ohm is an off-heap memory runtime written in C. Its Lua module gives reference-counted buffers with the Luau
buffer library's functions, pools whose memory goes back to the OS, a leak detector, mapped files and shared
memory, a unified memory manager with spilling consumers, and a libffi bridge.
]],
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
build = {
   type = "cmake",
   variables = {
      CMAKE_BUILD_TYPE = "RelWithDebInfo",
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
      OHM_LUA_INSTALL_CMOD = "$(LIBDIR)",
      OHM_INSTALL_C = "OFF",
      OHM_BUILD_TESTS = "OFF",
      OHM_BUILD_BENCHMARKS = "OFF",
      OHM_BUILD_STRESS = "OFF",
      OHM_BUILD_JAVA = "OFF",
   },
}
test = {
   type = "command",
   script = "tests/lua/run.lua",
}
