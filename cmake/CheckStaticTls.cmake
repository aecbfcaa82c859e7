# cmake -DLIB=lib.so -DREADELF=readelf -DMAX=<bytes> -P CheckStaticTls.cmake
# Fails when LIB's initial-exec thread-locals (its PT_TLS segment) take more than MAX bytes. JNI and Lua load ohm
# with dlopen, where such TLS comes out of the small spare static TLS glibc keeps for every dlopen'ed library of
# the process (about 1.6 KiB in all): past it, loading fails with "cannot allocate memory in static TLS block",
# and other libraries the host loads need their share too. Large per-thread state that only slow paths touch
# belongs on the heap behind a thread-local pointer (core/src/internal.h, OHM_TLS).
if(NOT LIB OR NOT READELF OR NOT MAX)
  message(FATAL_ERROR "CheckStaticTls.cmake needs -DLIB, -DREADELF and -DMAX")
endif()
execute_process(COMMAND ${READELF} -lW ${LIB} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${READELF} -lW ${LIB} failed (${rc})")
endif()
# The program header line: TLS Offset VirtAddr PhysAddr FileSiz MemSiz Flg Align
if(out MATCHES "\n *TLS +0x[0-9a-f]+ +0x[0-9a-f]+ +0x[0-9a-f]+ +0x[0-9a-f]+ +0x([0-9a-f]+)")
  math(EXPR size "0x${CMAKE_MATCH_1}")
else()
  set(size 0)
endif()
if(size GREATER MAX)
  message(FATAL_ERROR "${LIB} has ${size} bytes of static (initial-exec) TLS, over its budget of ${MAX}: keep large "
                      "per-thread state that fast paths do not touch on the heap (core/src/internal.h, OHM_TLS)")
endif()
message(STATUS "${LIB}: ${size} bytes of static TLS (budget ${MAX})")
