// ECF8_HD marks functions shared by host and device code: __host__ __device__ under nvcc, plain inline
// otherwise (CUTLASS's HOST_DEVICE idea), so shared cores compile and are tested as ordinary C++.
#pragma once

#if defined(__CUDACC__)
#define ECF8_HD __host__ __device__ inline
#else
#define ECF8_HD inline
#endif
