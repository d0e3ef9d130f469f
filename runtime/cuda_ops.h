// CudaOps: the op table (runtime/ops.h) on the CUDA backend: each op enqueues its kernels/cuda twin (or
// cuBLAS) on the stream's cudaStream_t. Its scratch (dequantized weights, quantized activations) is the
// backend's memory, tagged "gemm_scratch". Compiled only with CUDA.
#pragma once

#include <memory>

#include "runtime/ops.h"

namespace ecf8 {

class Backend;

// backend must be a CudaBackend and outlive the table.
std::unique_ptr<Ops> make_cuda_ops(Backend& backend);
// The CUDA BlobDecoder (runtime/cuda_blob_decoder.cpp), for Ops::make_blob_decoder.
std::unique_ptr<BlobDecoder> make_cuda_blob_decoder(Backend& backend, size_t blobs);

}  // namespace ecf8
