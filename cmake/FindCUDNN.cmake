# FindCUDNN: locates cuDNN (>= 9) and defines the imported target CUDNN::cudnn.
#
# Result variables: CUDNN_FOUND, CUDNN_VERSION, CUDNN_INCLUDE_DIR, CUDNN_LIBRARY.
# Hints: CUDNN_ROOT (cache or environment), the CUDA toolkit's folders, Debian/Ubuntu multiarch.
# The version is read from cudnn_version.h; find_package(CUDNN 9 REQUIRED) fails at configure
# time with a clear message when cuDNN is missing or older.

set(_cudnn_hints ${CUDNN_ROOT} $ENV{CUDNN_ROOT} $ENV{CUDNN_PATH})
if(CUDAToolkit_LIBRARY_ROOT)
  list(APPEND _cudnn_hints ${CUDAToolkit_LIBRARY_ROOT})
endif()
if(CUDAToolkit_INCLUDE_DIRS)
  foreach(_d ${CUDAToolkit_INCLUDE_DIRS})
    get_filename_component(_p ${_d} DIRECTORY)
    list(APPEND _cudnn_hints ${_p})
  endforeach()
endif()

find_path(CUDNN_INCLUDE_DIR cudnn_version.h
  HINTS ${_cudnn_hints}
  PATH_SUFFIXES include include/x86_64-linux-gnu include/aarch64-linux-gnu
  PATHS /usr/local/cuda /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu)
find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9
  HINTS ${_cudnn_hints}
  PATH_SUFFIXES lib lib64 lib/x64 lib/x86_64-linux-gnu
  PATHS /usr/local/cuda /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu)

if(CUDNN_INCLUDE_DIR AND EXISTS "${CUDNN_INCLUDE_DIR}/cudnn_version.h")
  file(READ "${CUDNN_INCLUDE_DIR}/cudnn_version.h" _cudnn_version_h)
  string(REGEX MATCH "#define CUDNN_MAJOR[ \t]+([0-9]+)" _ "${_cudnn_version_h}")
  set(CUDNN_VERSION_MAJOR ${CMAKE_MATCH_1})
  string(REGEX MATCH "#define CUDNN_MINOR[ \t]+([0-9]+)" _ "${_cudnn_version_h}")
  set(CUDNN_VERSION_MINOR ${CMAKE_MATCH_1})
  string(REGEX MATCH "#define CUDNN_PATCHLEVEL[ \t]+([0-9]+)" _ "${_cudnn_version_h}")
  set(CUDNN_VERSION_PATCH ${CMAKE_MATCH_1})
  set(CUDNN_VERSION "${CUDNN_VERSION_MAJOR}.${CUDNN_VERSION_MINOR}.${CUDNN_VERSION_PATCH}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUDNN
  REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR
  VERSION_VAR CUDNN_VERSION
  REASON_FAILURE_MESSAGE "cuDNN 9 is required: install it (e.g. the cudnn9-cuda-13 package) or set CUDNN_ROOT to its prefix.")

if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
  add_library(CUDNN::cudnn SHARED IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES
    IMPORTED_LOCATION "${CUDNN_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
endif()
mark_as_advanced(CUDNN_INCLUDE_DIR CUDNN_LIBRARY)
