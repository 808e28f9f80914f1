# cmake -P script: install the Kestrel build into WORK_DIR/prefix, then configure, build and run
# tests/consumer against that prefix with find_package(Kestrel); then build and run the same
# program with the compiler alone and `pkg-config --cflags --libs kestrel` from the installed
# lib/pkgconfig/kestrel.pc (CXX: the compiler; LIBDIR: the install's library folder). Fails
# (non-zero exit) at the first step that fails.
function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${ARGN}\n${err}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
run_step(${CMAKE_COMMAND} --install ${KESTREL_BUILD_DIR} --prefix ${WORK_DIR}/prefix)
if(NOT EXISTS ${WORK_DIR}/prefix/include/kestrel/kestrel.h)
  message(FATAL_ERROR "install tree lacks include/kestrel/kestrel.h")
endif()
run_step(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build -G ${CMAKE_GENERATOR}
         -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release)
run_step(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run_step(${WORK_DIR}/build/consumer)

find_program(PKG_CONFIG NAMES pkg-config pkgconf)
if(NOT PKG_CONFIG)
  message(FATAL_ERROR "pkg-config is not installed (tools/bootstrap.sh installs pkgconf): cannot check kestrel.pc")
endif()
set(ENV{PKG_CONFIG_PATH} ${WORK_DIR}/prefix/${LIBDIR}/pkgconfig)
execute_process(COMMAND ${PKG_CONFIG} --cflags --libs kestrel RESULT_VARIABLE rc OUTPUT_VARIABLE pc_flags
                ERROR_VARIABLE pc_err OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config does not find kestrel in ${WORK_DIR}/prefix/${LIBDIR}/pkgconfig: ${pc_err}")
endif()
message("pkg-config --cflags --libs kestrel: ${pc_flags}")
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
run_step(${CXX} -std=c++17 ${CONSUMER_SOURCE_DIR}/main.cpp -o ${WORK_DIR}/consumer_pkgconfig ${pc_flags}
         -Wl,-rpath,${WORK_DIR}/prefix/${LIBDIR})
run_step(${WORK_DIR}/consumer_pkgconfig)
