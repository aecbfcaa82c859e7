# How every Java part of the build is compiled and packaged (jni/, netty/, tests/java, examples/java,
# benchmarks/java).
#
# OHM_JAVAC: javac for JDK 17 with every lint on; with OHM_WERROR any warning fails the build, as for the C code.
# The one deliberate exception, sun.misc.Unsafe in org.ohm.Memory, is compiled on its own (see jni/CMakeLists.txt).
set(OHM_JAVAC ${Java_JAVAC_EXECUTABLE} --release 17 -encoding UTF-8 -Xlint:all)
# javadoc with every doclint group (missing comments, @param/@return, HTML, references); -Xmaxwarns so that no
# warning is left out of the log.
set(OHM_JAVADOC ${Java_JAVADOC_EXECUTABLE} --release 17 -encoding UTF-8 -docencoding UTF-8 -charset UTF-8 -quiet
    -Xdoclint:all -Xmaxwarns 10000)
if(OHM_WERROR)
  list(APPEND OHM_JAVAC -Werror)
  list(APPEND OHM_JAVADOC -Werror)
endif()

# ohm_java_maven_meta(ARTIFACT MODULE POM_IN): what a jar needs to be a Maven artifact, configured into this
# directory's build tree: ARTIFACT.pom (from the template POM_IN), the manifest (Automatic-Module-Name MODULE, so
# a modular application can require it) and the pom.properties Maven puts beside the pom inside a jar. Sets
# ARTIFACT_pom, ARTIFACT_manifest and ARTIFACT_maven_dir (the directory to copy into the classes as
# META-INF/maven/org.ohm/ARTIFACT, which mvn install:install-file reads when given the jar alone).
function(ohm_java_maven_meta artifact module pom_in)
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/maven)
  configure_file(${pom_in} ${dir}/pom.xml @ONLY)
  file(WRITE ${dir}/pom.properties "groupId=org.ohm\nartifactId=${artifact}\nversion=${PROJECT_VERSION}\n")
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/manifest.txt
       "Automatic-Module-Name: ${module}\nImplementation-Title: ${artifact}\nImplementation-Version: ${PROJECT_VERSION}\n")
  set(${artifact}_pom ${dir}/pom.xml PARENT_SCOPE)
  set(${artifact}_manifest ${CMAKE_CURRENT_BINARY_DIR}/manifest.txt PARENT_SCOPE)
  set(${artifact}_maven_dir ${dir} PARENT_SCOPE)
endfunction()

# ohm_java_doc_jars(ARTIFACT OUT_DIR SOURCE_ROOT CLASSPATH DEPENDS SOURCES...): OUT_DIR/ARTIFACT-sources.jar (the
# SOURCES, relative to SOURCE_ROOT) and OUT_DIR/ARTIFACT-javadoc.jar (their javadoc, which fails the build on any
# doclint warning under OHM_WERROR), built by the target ARTIFACT_doc_jars (ALL) after the target DEPENDS.
function(ohm_java_doc_jars artifact out_dir source_root classpath depends)
  set(sources_jar ${out_dir}/${artifact}-sources.jar)
  set(javadoc_jar ${out_dir}/${artifact}-javadoc.jar)
  set(apidocs ${CMAKE_CURRENT_BINARY_DIR}/apidocs)
  set(jar_inputs "") # jar's -C applies to the one file after it
  foreach(s ${ARGN})
    file(RELATIVE_PATH r ${source_root} ${s})
    list(APPEND jar_inputs -C ${source_root} ${r})
  endforeach()
  set(cp "")
  if(classpath)
    set(cp -cp ${classpath})
  endif()
  add_custom_command(
    OUTPUT ${sources_jar} ${javadoc_jar}
    COMMAND ${Java_JAR_EXECUTABLE} cf ${sources_jar} ${jar_inputs}
    COMMAND ${CMAKE_COMMAND} -E rm -rf ${apidocs}
    COMMAND ${OHM_JAVADOC} ${cp} -d ${apidocs} -doctitle "${artifact} ${PROJECT_VERSION}"
            -windowtitle "${artifact} ${PROJECT_VERSION}" ${ARGN}
    COMMAND ${Java_JAR_EXECUTABLE} cf ${javadoc_jar} -C ${apidocs} .
    DEPENDS ${ARGN} ${depends}
    COMMENT "Building ${artifact}-sources.jar and ${artifact}-javadoc.jar"
    VERBATIM)
  add_custom_target(${artifact}_doc_jars ALL DEPENDS ${sources_jar} ${javadoc_jar})
endfunction()
