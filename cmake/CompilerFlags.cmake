# Warning flags for Kestrel's own targets (host code: -Wall -Wextra; device code: nvcc's host
# compiler gets the same, and nvcc's front end reports unused parameters of device functions,
# diagnostic 826, off by default, so device code is held to -Wunused-parameter too). Applied
# through the interface target kestrel_warnings.
add_library(kestrel_warnings INTERFACE)
target_compile_options(kestrel_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra -Xcudafe=--diag_warning=826
                                  --expt-relaxed-constexpr>)
option(KESTREL_WERROR "Treat warnings in Kestrel's own code as errors" OFF)
if(KESTREL_WERROR)
  target_compile_options(kestrel_warnings INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-Werror>
    $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings -Xcompiler=-Werror>)
endif()
