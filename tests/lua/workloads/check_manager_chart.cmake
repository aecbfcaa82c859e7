# Runs ohm-stress on uses_manager.lua for a second (about ten samples) with an HTML report and checks that the
# report's "Memory manager" chart shows the 1 MiB the workload holds (its top axis label), not the flat zero of a
# driver that sees no manager.
#   cmake -DSTRESS=<ohm-stress> -DWORKLOAD=<file> -DREPORT=<file.html> -P check_manager_chart.cmake
execute_process(COMMAND ${STRESS} --lua ${WORKLOAD} --duration 1 --report ${REPORT}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ohm-stress exited with ${rc}, expected 0")
endif()
file(READ ${REPORT} html)
string(FIND "${html}" "Memory manager</h2>" at)
if(at LESS 0)
  message(FATAL_ERROR "the report has no Memory manager chart")
endif()
string(SUBSTRING "${html}" ${at} -1 chart)
string(FIND "${chart}" "</svg>" end)
string(SUBSTRING "${chart}" 0 ${end} chart)
if(NOT chart MATCHES ">1\\.0 MiB</text>")
  message(FATAL_ERROR "the Memory manager chart does not reach 1.0 MiB:\n${chart}")
endif()
