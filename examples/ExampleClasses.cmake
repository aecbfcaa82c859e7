# ohm_example_classes(TARGET DIR CLASSPATH SOURCE [DEPENDS...]): compiles an example workload's SOURCE (OHM_JAVAC:
# every lint, -Werror with OHM_WERROR) into DIR/classes, again whenever SOURCE or DEPENDS change; TARGET (built by default) stands for it.
function(ohm_example_classes target dir cp source)
  add_custom_command(
    OUTPUT ${dir}/classes.stamp
    COMMAND ${CMAKE_COMMAND} -E rm -rf ${dir}/classes
    COMMAND ${OHM_JAVAC} -cp ${cp} -d ${dir}/classes ${source}
    COMMAND ${CMAKE_COMMAND} -E touch ${dir}/classes.stamp
    DEPENDS ${source} ${ARGN}
    COMMENT "Compiling the example workload ${source}"
    VERBATIM)
  add_custom_target(${target} ALL DEPENDS ${dir}/classes.stamp)
endfunction()
