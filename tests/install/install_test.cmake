# Installs the build tree into a fresh prefix and builds tests/install/consumer.c against it both ways a user
# would: with pkg-config (cc $(pkg-config --cflags --libs ohm)) and with CMake (find_package(ohm CONFIG), shared
# and static), then runs each program. cmake -DBUILD=<build dir> -DWORK=<scratch dir> -DCC=<compiler>
# -DFLAGS=<;-list of the build's sanitizer flags> -P install_test.cmake
set(src ${CMAKE_CURRENT_LIST_DIR})
set(prefix ${WORK}/prefix)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n${out}${err}")
  endif()
  set(run_out "${out}" PARENT_SCOPE)
endfunction()

function(expect_runs exe)
  run(${CMAKE_COMMAND} -E env LD_LIBRARY_PATH= ${exe})
  if(NOT run_out MATCHES "installed ohm works")
    message(FATAL_ERROR "${exe} printed '${run_out}'")
  endif()
  message(STATUS "ok: ${exe}")
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD} --prefix ${prefix})
foreach(f include/ohm.h)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
file(GLOB_RECURSE pcs ${prefix}/*/ohm.pc)
file(GLOB_RECURSE sonames ${prefix}/*/libohm.so.[0-9])
file(GLOB_RECURSE archives ${prefix}/*/libohm.a)
if(NOT pcs OR NOT sonames OR NOT archives)
  message(FATAL_ERROR "missing from ${prefix}: ohm.pc '${pcs}', libohm.so.N '${sonames}', libohm.a '${archives}'")
endif()
list(GET pcs 0 pc)
get_filename_component(pcdir ${pc} DIRECTORY)
get_filename_component(libdir ${pcdir} DIRECTORY)

# pkg-config: the flags it gives, plus an rpath so the program finds libohm.so without LD_LIBRARY_PATH.
run(${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${pcdir} pkg-config --cflags --libs ohm)
string(STRIP "${run_out}" pcflags)
separate_arguments(pcflags UNIX_COMMAND "${pcflags}")
run(${CC} ${FLAGS} -o ${WORK}/consumer_pc ${src}/consumer.c ${pcflags} -Wl,-rpath,${libdir})
expect_runs(${WORK}/consumer_pc)

# CMake: find_package(ohm CONFIG) from the prefix; the install's own rpath handling is CMake's.
string(REPLACE ";" " " flags "${FLAGS}")
run(${CMAKE_COMMAND} -S ${src}/consumer -B ${WORK}/consumer-build -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_C_COMPILER=${CC} "-DCMAKE_C_FLAGS=${flags}" "-DCMAKE_EXE_LINKER_FLAGS=${flags}")
run(${CMAKE_COMMAND} --build ${WORK}/consumer-build)
expect_runs(${WORK}/consumer-build/consumer_shared)
expect_runs(${WORK}/consumer-build/consumer_static)
