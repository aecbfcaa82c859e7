# Runs org.ohm.stress.Main on a Java workload and checks its exit status and output (a ctest test).
#   cmake -DJAVA=<java> -DCP=<classpath> -DWORKLOAD=<class> -DRC=<expected status> [-DLEAK=1] [-DARGS="a;b"]
#         [-DEXPECT="regex;regex"] [-DSOURCE=<the workload's .java>] [-DLEAK_MODE=<mode>] -P run_check.cmake
# With SOURCE, the JSON's only leak site must be that file's line marked "PLANTED LEAK", exactly. LEAK_MODE sets
# LEAK=<mode> instead of LEAK=1.
set(leak_env --unset=LEAK)
if(LEAK)
  set(leak_env LEAK=1)
endif()
if(LEAK_MODE) # another planted leak of the workload's, by name: LEAK=<mode>
  set(leak_env LEAK=${LEAK_MODE})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env ${leak_env} ${JAVA} -Xmx256m -cp ${CP} org.ohm.stress.Main
                        --workload ${WORKLOAD} ${ARGS}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(APPEND out "${err}")
message("${out}")
set(wrong "")
if(NOT rc EQUAL RC)
  list(APPEND wrong "exit status ${rc}, expected ${RC}")
endif()
foreach(re IN LISTS EXPECT)
  if(NOT out MATCHES "${re}")
    list(APPEND wrong "no match for ${re}")
  endif()
endforeach()
if(SOURCE)
  # The line number by counting newlines before the marker (file(STRINGS) lists mangle Java's brackets).
  file(READ ${SOURCE} text)
  string(FIND "${text}" "PLANTED LEAK" at)
  string(SUBSTRING "${text}" 0 ${at} before)
  string(REGEX REPLACE "[^\n]" "" newlines "${before}")
  string(LENGTH "${newlines}" line)
  math(EXPR line "${line} + 1")
  get_filename_component(file ${SOURCE} NAME)
  string(REGEX MATCH "\"leak_sites\":\\[\\{\"site\":\"([^\"]*)\"[^]]*\\]" m "${out}")
  if(NOT CMAKE_MATCH_1 STREQUAL "${file}:${line}" OR m MATCHES "\\},\\{")
    list(APPEND wrong "leak_sites: '${m}', expected one site, ${file}:${line} (the planted line)")
  endif()
endif()
if(wrong)
  string(REPLACE ";" "\n" wrong "${wrong}")
  message(FATAL_ERROR "${wrong}")
endif()
