// An exactly sized, 16-byte-aligned copy of a fuzzer input, as the container keeps blobs in a file; exact
// sizing lets AddressSanitizer catch a read one byte past the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

class AlignedCopy {
public:
    AlignedCopy(const uint8_t* data, size_t size)
        : size_(size), data_(static_cast<uint8_t*>(::operator new (size ? size : 1, std::align_val_t{16}))) {
        if (size) std::memcpy(data_, data, size);
    }
    ~AlignedCopy() { ::operator delete (data_, std::align_val_t{16}); }
    AlignedCopy(const AlignedCopy&) = delete;
    AlignedCopy& operator=(const AlignedCopy&) = delete;
    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }

private:
    size_t size_;
    uint8_t* data_;
};
