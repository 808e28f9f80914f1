# Installation: libkestrel.so, headers under include/kestrel/, a CMake package so that
#   find_package(Kestrel) + target_link_libraries(app PRIVATE Kestrel::kestrel)
# works from an outside project, and a pkg-config file (lib/pkgconfig/kestrel.pc) for builds
# without CMake. Headers named *_internal.h and *.cuh stay private.
include(CMakePackageConfigHelpers)

foreach(part core kernels layers)
  file(GLOB_RECURSE _headers RELATIVE ${CMAKE_CURRENT_SOURCE_DIR}/${part} CONFIGURE_DEPENDS
    ${CMAKE_CURRENT_SOURCE_DIR}/${part}/*.h)
  foreach(h ${_headers})
    if(NOT h MATCHES "_internal\\.h$")
      get_filename_component(_dir ${h} DIRECTORY)
      install(FILES ${part}/${h} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kestrel/${part}/${_dir})
    endif()
  endforeach()
endforeach()
install(FILES ${KESTREL_BUILD_INCLUDE}/kestrel/kestrel.h ${KESTREL_BUILD_INCLUDE}/kestrel/config.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kestrel)

install(TARGETS kestrel EXPORT KestrelTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(KESTREL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Kestrel)
install(EXPORT KestrelTargets NAMESPACE Kestrel:: DESTINATION ${KESTREL_CMAKE_DIR})
configure_package_config_file(cmake/KestrelConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/KestrelConfig.cmake INSTALL_DESTINATION ${KESTREL_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/KestrelConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/KestrelConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/KestrelConfigVersion.cmake
  DESTINATION ${KESTREL_CMAKE_DIR})

# pkg-config: the prefix is found relative to the .pc file (${pcfiledir}), so the tree can move.
file(RELATIVE_PATH KESTREL_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" KESTREL_PC_TO_PREFIX "${KESTREL_PC_TO_PREFIX}")
list(GET CUDAToolkit_INCLUDE_DIRS 0 KESTREL_PC_CUDA_INCLUDEDIR)
set(KESTREL_PC_CUDA_LIBDIR ${CUDAToolkit_LIBRARY_DIR})
configure_file(cmake/kestrel.pc.in ${CMAKE_CURRENT_BINARY_DIR}/kestrel.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/kestrel.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
