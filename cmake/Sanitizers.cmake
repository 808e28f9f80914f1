# AddressSanitizer + UndefinedBehaviorSanitizer for host code (KESTREL_SANITIZE=ON).
# Device code is compiled by nvcc without sanitizers; the CUDA paths are checked with
# compute-sanitizer on a GPU instead (tools/gpu_check.sh).
set(KESTREL_SANITIZE_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
function(kestrel_apply_sanitizers target)
  if(KESTREL_SANITIZE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${KESTREL_SANITIZE_FLAGS}>)
    target_link_options(${target} PRIVATE ${KESTREL_SANITIZE_FLAGS})
  endif()
endfunction()
