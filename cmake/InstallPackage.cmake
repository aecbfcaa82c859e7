# The install tree's package files: ohm.pc for pkg-config and the CMake package ohm (ohmConfig.cmake, its version
# file and the exported targets ohm::ohm and ohm::ohm_static). Included from the top-level CMakeLists.txt after
# install(TARGETS ... EXPORT ohmTargets).
include(CMakePackageConfigHelpers)

set(OHM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/ohm)
# The .pc file finds its prefix from where it is (${pcfiledir}), so `cmake --install --prefix P` needs no
# reconfigure; absolute install dirs are used as they are.
file(RELATIVE_PATH OHM_PC_UP /root/${CMAKE_INSTALL_LIBDIR}/pkgconfig /root)
string(REGEX REPLACE "/$" "" OHM_PC_UP "${OHM_PC_UP}")
set(OHM_PC_PREFIX "\${pcfiledir}/${OHM_PC_UP}")
foreach(dir INCLUDEDIR LIBDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(OHM_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(OHM_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
configure_file(${PROJECT_SOURCE_DIR}/cmake/ohm.pc.in ${PROJECT_BINARY_DIR}/ohm.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/ohm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(EXPORT ohmTargets NAMESPACE ohm:: DESTINATION ${OHM_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ohmConfig.cmake.in ${PROJECT_BINARY_DIR}/ohmConfig.cmake
                              INSTALL_DESTINATION ${OHM_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ohmConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ohmConfig.cmake ${PROJECT_BINARY_DIR}/ohmConfigVersion.cmake
        DESTINATION ${OHM_CMAKE_DIR})
