// ECF8 decode on the CPU. Single tensors go straight to the codec's decode_range; batches are cut into
// work units (one Huffman chunk, or one slice of a raw copy) that the thread pool claims dynamically.
#include "kernels/cpu/ecf8_decode.h"

#include <algorithm>
#include <cstring>

#include "codec/decoder.h"
#include "common/error.h"
#include "common/thread_pool.h"

namespace ecf8 {

namespace {

constexpr uint64_t kRawPieceBytes = uint64_t{1} << 20;  // a raw (stored) tensor is copied in 1 MiB units

bool is_raw(const PreparedTensor& t) { return t.view().header.mode == static_cast<uint8_t>(BlobMode::Raw); }

// Work units of one job: chunks overlapping its range, or raw copy pieces.
uint64_t job_units(const DecodeJob& job) {
    if (job.begin == job.end) return 0;
    const PreparedTensor& t = *job.tensor;
    if (is_raw(t)) return ((job.end - job.begin) * t.view().value_bytes() + kRawPieceBytes - 1) / kRawPieceBytes;
    const uint64_t ce = t.view().chunk_elems();
    return (job.end - 1) / ce - job.begin / ce + 1;
}

void copy_raw_piece(const DecodeJob& job, uint64_t piece) {
    const PreparedTensor& t = *job.tensor;
    const uint64_t bytes = (job.end - job.begin) * t.view().value_bytes();
    const uint64_t lo = piece * kRawPieceBytes, hi = std::min(bytes, lo + kRawPieceBytes);
    const uint8_t* src = reinterpret_cast<const uint8_t*>(t.view().stream) + job.begin * t.view().value_bytes();
    std::memcpy(static_cast<uint8_t*>(job.out) + lo, src + lo, hi - lo);
}

// Decodes chunk number `index` (counted from the first chunk overlapping the range) of a job, writing only
// the in-range elements.
void decode_job_chunk(const DecodeJob& job, uint64_t index) {
    const PreparedTensor& t = *job.tensor;
    const BlobView& v = t.view();
    const uint64_t ce = v.chunk_elems();
    const size_t vb = v.value_bytes();
    const uint32_t c = static_cast<uint32_t>(job.begin / ce + index);
    const uint64_t c_begin = uint64_t{c} * ce, c_end = std::min(c_begin + ce, t.numel());
    uint8_t* dst = static_cast<uint8_t*>(job.out);
    if (c_begin >= job.begin && c_end <= job.end) {
        decode_chunk(t, c, dst + (c_begin - job.begin) * vb);
        return;
    }
    thread_local std::vector<uint8_t> scratch;
    if (scratch.size() < ce * vb) scratch.resize(ce * vb);
    decode_chunk(t, c, scratch.data());
    const uint64_t lo = std::max(job.begin, c_begin), hi = std::min(job.end, c_end);
    std::memcpy(dst + (lo - job.begin) * vb, scratch.data() + (lo - c_begin) * vb, (hi - lo) * vb);
}

}  // namespace

void ecf8_decode_cpu(const PreparedTensor& t, uint64_t begin, uint64_t end, void* out, ThreadPool* pool) {
    decode_range(t, begin, end, out, pool);
}

void ecf8_decode_batch_cpu(const std::vector<DecodeJob>& jobs, ThreadPool* pool) {
    std::vector<uint64_t> starts(jobs.size() + 1, 0);  // starts[j]: first work unit of job j
    for (size_t j = 0; j < jobs.size(); ++j) {
        const DecodeJob& job = jobs[j];
        ECF8_CHECK(job.tensor != nullptr, "decode job " << j << " has no tensor");
        const PreparedTensor& t = *job.tensor;
        ECF8_CHECK(job.begin <= job.end && job.end <= t.numel(),
                   "tensor '" << t.label() << "': decode range [" << job.begin << ", " << job.end << ") is outside its "
                              << t.numel() << " elements");
        ECF8_CHECK(job.out != nullptr || job.begin == job.end, "tensor '" << t.label() << "': null output");
        starts[j + 1] = starts[j] + job_units(job);
    }
    auto one = [&](size_t unit) {
        // The job owning `unit`: the last one starting at or before it (jobs with no units are skipped).
        size_t j =
            static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), uint64_t{unit}) - starts.begin()) - 1;
        const DecodeJob& job = jobs[j];
        if (is_raw(*job.tensor))
            copy_raw_piece(job, unit - starts[j]);
        else
            decode_job_chunk(job, unit - starts[j]);
    };
    const size_t total = static_cast<size_t>(starts.back());
    if (pool)
        pool->parallel_for(total, one);
    else
        for (size_t u = 0; u < total; ++u) one(u);
}

}  // namespace ecf8
