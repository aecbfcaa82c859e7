# ohm_stress_report: the report writer of users' workload runs (workload.c) and the charts it draws (chart.c), the
# one writer behind ohm-stress --lua and the Java driver org.ohm.stress.Main. Included by stress/ and jni/ (either
# may be configured without the other): a static, position-independent library that libohm_jni.so links in and
# hides (its exports stay JNI_OnLoad and JNI_OnUnload). Its JSON writer is the core's, through ohm_static.
if(NOT TARGET ohm_stress_report)
  add_library(ohm_stress_report STATIC ${CMAKE_CURRENT_LIST_DIR}/workload.c ${CMAKE_CURRENT_LIST_DIR}/chart.c)
  target_include_directories(ohm_stress_report PUBLIC ${CMAKE_CURRENT_LIST_DIR}
                             PRIVATE ${PROJECT_SOURCE_DIR}/core/src)
  target_link_libraries(ohm_stress_report PUBLIC ohm_static m)
  set_target_properties(ohm_stress_report PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON
                        POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
endif()
