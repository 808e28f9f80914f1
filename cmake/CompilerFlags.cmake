# Warning flags for Kestrel's own targets (host code: -Wall -Wextra; device code: nvcc's host
# compiler gets the same). Applied through the interface target kestrel_warnings.
add_library(kestrel_warnings INTERFACE)
target_compile_options(kestrel_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wno-unused-parameter --expt-relaxed-constexpr>)
option(KESTREL_WERROR "Treat warnings in Kestrel's own code as errors" OFF)
if(KESTREL_WERROR)
  target_compile_options(kestrel_warnings INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-Werror>
    $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings -Xcompiler=-Werror>)
endif()
