# The Netty example workload (examples/netty, com.example.NettyEchoWorkload) and its ctests: org.ohm.stress.Main
# runs it clean (exit 0), with its planted leak (exit 1, the planted line the only leak site) and with its planted
# handler leak (exit 1, that handler the only leak site), through the Java example's check
# (examples/java/run_check.cmake). Included by netty/CMakeLists.txt once ohm-netty.jar is defined;
# built only when Netty's transport and codec jars are there too.
ohm_netty_classpath(ohm_netty_example_cp "The Netty example workload" buffer common transport resolver codec)
if(NOT ohm_netty_example_cp)
  return()
endif()
set(OHM_NETTY_EXAMPLE_SOURCE ${CMAKE_CURRENT_LIST_DIR}/com/example/NettyEchoWorkload.java)
set(OHM_NETTY_EXAMPLE_CLASSES ${CMAKE_BINARY_DIR}/examples/netty/classes)
include(${PROJECT_SOURCE_DIR}/examples/ExampleClasses.cmake)
ohm_example_classes(ohm_netty_example ${CMAKE_BINARY_DIR}/examples/netty
                    ${OHM_JAR}:${OHM_NETTY_JAR}:${ohm_netty_example_cp} ${OHM_NETTY_EXAMPLE_SOURCE}
                    ${OHM_NETTY_SOURCES} ${OHM_JAVA_SOURCES} ohm_netty_jar)

if(NOT OHM_BUILD_TESTS OR OHM_SANITIZE STREQUAL "thread") # the JVM cannot run under TSan
  return()
endif()
set(check ${CMAKE_COMMAND} -DJAVA=${Java_JAVA_EXECUTABLE}
    -DCP=${OHM_JAR}:${OHM_NETTY_JAR}:${ohm_netty_example_cp}:${OHM_NETTY_EXAMPLE_CLASSES}
    -DWORKLOAD=com.example.NettyEchoWorkload)
set(script -P ${PROJECT_SOURCE_DIR}/examples/java/run_check.cmake)
add_test(NAME netty_stress_example_clean COMMAND ${check} -DRC=0 "-DARGS=--threads;2;--iterations;5000;--json"
         "-DEXPECT=\"leaks\":0,;\"integrity_errors\":0,;\"passed\":true" ${script})
add_test(NAME netty_stress_example_planted COMMAND ${check} -DRC=1 -DLEAK=1
         "-DARGS=--threads;2;--iterations;5000;--json" -DSOURCE=${OHM_NETTY_EXAMPLE_SOURCE}
         "-DEXPECT=\"leaks\":10,;\"integrity_errors\":0,;\"passed\":false" ${script})
# The handler's leak: the server's handler keeps an inbound message the event loop allocated (in the run's scope,
# not an iteration's). All 10 leaks at one site (count 10) naming that handler, the last to touch them, as Netty's
# pipeline names it (`.` for `$`).
set(handler_site "\"leak_sites\":.{\"site\":\"last touched by handler NettyEchoWorkload.Echo#0 [^\"]*\",")
string(APPEND handler_site "\"count\":10,")
add_test(NAME netty_stress_example_planted_handler COMMAND ${check} -DRC=1 -DLEAK_MODE=handler
         "-DARGS=--threads;2;--iterations;5000;--json"
         "-DEXPECT=\"leaks\":10,;${handler_site};\"integrity_errors\":0,;\"passed\":false" ${script})
foreach(t netty_stress_example_clean netty_stress_example_planted netty_stress_example_planted_handler)
  set_tests_properties(${t} PROPERTIES TIMEOUT 300 LABELS "netty;java;stress" FAIL_REGULAR_EXPRESSION
    "WARNING in native method|FATAL ERROR in native method|ERROR: AddressSanitizer|runtime error:")
  # As tests/java: ASan's runtime first in the JVM, which keeps SIGSEGV. The quarantine is cut from 256 MiB: over
  # this ~10 s run under ASan, filling it read as steady RSS growth, which the growth verdict fails.
  if(OHM_SANITIZE STREQUAL "address")
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so OUTPUT_VARIABLE asan_lib
                    OUTPUT_STRIP_TRAILING_WHITESPACE)
    set_tests_properties(${t} PROPERTIES ENVIRONMENT "LD_PRELOAD=${asan_lib};ASAN_OPTIONS=handle_segv=0:\
detect_leaks=0:allow_user_segv_handler=1:use_sigaltstack=0:quarantine_size_mb=8")
  endif()
endforeach()
