// NcclCommunicator on device buffers (gpu label, run as mpirun -np 1 [or more]; skips without a device):
// every collective against the values the MpiCommunicator tests expect, in stream order.
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <vector>

#include "runtime/cuda_backend.h"
#include "runtime/nccl_communicator.h"

namespace ecf8 {
namespace {

class NcclTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (CudaBackend::device_count() == 0) GTEST_SKIP() << "no CUDA device";
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
        cudaSetDevice(rank_ % CudaBackend::device_count());
        comm_ = std::make_unique<NcclCommunicator>(MPI_COMM_WORLD, rank_ % CudaBackend::device_count());
        stream_ = static_cast<cudaStream_t>(comm_->stream());
    }
    void TearDown() override { comm_.reset(); }
    template <class T>
    T* upload(const std::vector<T>& v) {
        T* d = nullptr;
        cudaMalloc(&d, v.size() * sizeof(T));
        cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
        buffers_.push_back(d);
        return d;
    }
    template <class T>
    std::vector<T> download(const T* d, size_t n) {
        cudaStreamSynchronize(stream_);
        std::vector<T> v(n);
        cudaMemcpy(v.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost);
        return v;
    }
    ~NcclTest() override {
        for (void* p : buffers_) cudaFree(p);
    }
    int rank_ = 0, size_ = 1;
    cudaStream_t stream_ = nullptr;
    std::unique_ptr<NcclCommunicator> comm_;
    std::vector<void*> buffers_;
};

TEST_F(NcclTest, AllReduceAllGatherBroadcastAllToAll) {
    const size_t n = 1000;
    std::vector<float> mine(n);
    for (size_t i = 0; i < n; ++i) mine[i] = float(rank_ + 1) * float(i);
    float* buf = upload(mine);
    comm_->all_reduce_sum(buf, n, ElemType::F32);
    const std::vector<float> sum = download(buf, n);
    const float ranks_sum = float(size_) * float(size_ + 1) / 2;
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(sum[i], ranks_sum * float(i)) << i;

    std::vector<int32_t> one(n, rank_);
    int32_t* send = upload(one);
    int32_t* recv = upload(std::vector<int32_t>(n * size_, -1));
    comm_->all_gather(send, recv, n, ElemType::I32);
    const std::vector<int32_t> gathered = download(recv, n * size_);
    for (int r = 0; r < size_; ++r) ASSERT_EQ(gathered[r * n], r);

    int32_t* b = upload(std::vector<int32_t>(n, rank_ == 0 ? 42 : 0));
    comm_->broadcast(b, n, ElemType::I32, 0);
    EXPECT_EQ(download(b, n), std::vector<int32_t>(n, 42));

    std::vector<int32_t> blocks(n * size_);
    for (int d = 0; d < size_; ++d)
        for (size_t i = 0; i < n; ++i) blocks[d * n + i] = rank_ * 1000 + d;
    int32_t* a2a_send = upload(blocks);
    int32_t* a2a_recv = upload(std::vector<int32_t>(n * size_, -1));
    comm_->all_to_all(a2a_send, a2a_recv, n, ElemType::I32);
    const std::vector<int32_t> got = download(a2a_recv, n * size_);
    for (int s = 0; s < size_; ++s) ASSERT_EQ(got[s * n], s * 1000 + rank_);
    comm_->barrier();
}

}  // namespace
}  // namespace ecf8

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    ::testing::InitGoogleTest(&argc, argv);
    const int result = RUN_ALL_TESTS();
    MPI_Finalize();
    return result;
}
