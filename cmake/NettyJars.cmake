# Debian's Netty jars (libnetty-java), for ohm-netty.jar, its tests and ohm-bench-java.
set(OHM_NETTY_DIR /usr/share/java CACHE PATH "Where netty-buffer.jar and netty-common.jar are (Debian libnetty-java)")

# ohm_netty_classpath(VAR WHAT JAR...): VAR = the colon-separated paths of netty-<JAR>.jar in OHM_NETTY_DIR, or
# empty after a warning "WHAT not built: ... is missing" when one is not there.
function(ohm_netty_classpath var what)
  set(cp "")
  foreach(jar ${ARGN})
    if(NOT EXISTS ${OHM_NETTY_DIR}/netty-${jar}.jar)
      message(WARNING "${what} not built: ${OHM_NETTY_DIR}/netty-${jar}.jar is missing (Debian package libnetty-java)")
      set(${var} "" PARENT_SCOPE)
      return()
    endif()
    list(APPEND cp ${OHM_NETTY_DIR}/netty-${jar}.jar)
  endforeach()
  string(REPLACE ";" ":" cp "${cp}")
  set(${var} "${cp}" PARENT_SCOPE)
endfunction()
