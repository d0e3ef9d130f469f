// Read-only memory mapping of a whole file: move-only, unmapped when destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ecf8 {

class MappedFile {
public:
    MappedFile() = default;  // maps nothing: data() == nullptr, size() == 0

    // Maps `path` read-only (MAP_PRIVATE). Throws ecf8::Error naming the path and the system error.
    // An empty file is valid: size() == 0 and data() == nullptr.
    static MappedFile open(const std::string& path);

    ~MappedFile();
    MappedFile(MappedFile&& other) noexcept;
    MappedFile& operator=(MappedFile&& other) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

    // Drops the resident pages of [p, p + n) (a range inside this mapping) from the process: streaming
    // readers call it after each tensor so their RSS stays bounded. The data stays readable (the pages are
    // read again from the file when touched).
    void release(const void* p, size_t n) const noexcept;

private:
    void unmap() noexcept;

    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace ecf8
