# AddressSanitizer + UndefinedBehaviorSanitizer for host code (KESTREL_SANITIZE=ON), or
# ThreadSanitizer (KESTREL_SANITIZE_THREAD=ON; the `tsan` preset, run by hand: docs/RELIABILITY.md).
# Device code is compiled by nvcc without sanitizers; the CUDA paths are checked with
# compute-sanitizer on a GPU instead (tools/gpu_check.sh).
set(KESTREL_SANITIZE_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
set(KESTREL_TSAN_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
if(KESTREL_SANITIZE AND KESTREL_SANITIZE_THREAD)
  message(FATAL_ERROR "KESTREL_SANITIZE and KESTREL_SANITIZE_THREAD cannot be combined: "
                      "AddressSanitizer and ThreadSanitizer exclude each other")
endif()
function(kestrel_apply_sanitizers target)
  if(KESTREL_SANITIZE_THREAD)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${KESTREL_TSAN_FLAGS}>)
    target_link_options(${target} PRIVATE ${KESTREL_TSAN_FLAGS})
  endif()
  if(KESTREL_SANITIZE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${KESTREL_SANITIZE_FLAGS}>)
    target_link_options(${target} PRIVATE ${KESTREL_SANITIZE_FLAGS})
  endif()
endfunction()
