// KESTREL_HD marks functions compiled for both host and device, so that CPU tests exercise
// exactly the code the GPU runs. Leaf header: includes nothing of Kestrel's.
#pragma once

#if defined(__CUDACC__)
#define KESTREL_HD __host__ __device__ __forceinline__
#else
#define KESTREL_HD inline
#endif
