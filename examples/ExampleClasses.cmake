# ohm_example_classes(TARGET DIR CLASSPATH SOURCE [DEPENDS...]): compiles an example workload's SOURCE (javac
# --release 17) into DIR/classes, again whenever SOURCE or DEPENDS change; TARGET (built by default) stands for it.
function(ohm_example_classes target dir cp source)
  add_custom_command(
    OUTPUT ${dir}/classes.stamp
    COMMAND ${CMAKE_COMMAND} -E rm -rf ${dir}/classes
    COMMAND ${Java_JAVAC_EXECUTABLE} --release 17 -encoding UTF-8 -Xlint:all,-options -cp ${cp} -d ${dir}/classes
            ${source}
    COMMAND ${CMAKE_COMMAND} -E touch ${dir}/classes.stamp
    DEPENDS ${source} ${ARGN}
    COMMENT "Compiling the example workload ${source}"
    VERBATIM)
  add_custom_target(${target} ALL DEPENDS ${dir}/classes.stamp)
endfunction()
