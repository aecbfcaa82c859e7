# Runs the built-in ohm-stress run and checks its exit status and what it prints (a ctest test; no shell in
# between, so it runs under the sanitizer builds too).
#   cmake -DSTRESS=<ohm-stress> -DRC=<expected exit status> -DARGS="a;b" [-DEXPECT="regex;regex"] -P run_check.cmake
execute_process(COMMAND ${STRESS} ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
message("${all}")
if(NOT rc EQUAL RC)
  message(FATAL_ERROR "ohm-stress ${ARGS} exited with ${rc}, expected ${RC}")
endif()
foreach(re IN LISTS EXPECT)
  if(NOT all MATCHES "${re}")
    message(FATAL_ERROR "ohm-stress ${ARGS} printed nothing that matches ${re}")
  endif()
endforeach()
