// MappedFile: open + fstat + mmap(PROT_READ, MAP_PRIVATE); the descriptor is closed once the mapping exists.
#include "codec/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include "common/error.h"

namespace ecf8 {
namespace {

std::string errno_text(int err) { return std::generic_category().message(err); }

// Closes a descriptor when it goes out of scope.
struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
};

}  // namespace

MappedFile MappedFile::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        ECF8_FAIL("cannot open '" << path << "': " << errno_text(err));
    }
    FdCloser closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        int err = errno;
        ECF8_FAIL("cannot stat '" << path << "': " << errno_text(err));
    }
    ECF8_CHECK(S_ISREG(st.st_mode), "cannot map '" << path << "': not a regular file");

    MappedFile file;
    file.path_ = path;
    file.size_ = static_cast<size_t>(st.st_size);
    if (file.size_ == 0) return file;
    void* p = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        int err = errno;
        ECF8_FAIL("cannot mmap '" << path << "' (" << file.size_ << " bytes): " << errno_text(err));
    }
    file.data_ = static_cast<const uint8_t*>(p);
    return file;
}

MappedFile::~MappedFile() { unmap(); }

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
    if (this != &other) {
        unmap();
        path_ = std::move(other.path_);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

void MappedFile::release(const void* p, size_t n) const noexcept {
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto lo = reinterpret_cast<uintptr_t>(p), hi = lo + n;
    const auto base = reinterpret_cast<uintptr_t>(data_);
    if (data_ == nullptr || lo < base || hi > base + size_) return;
    const uintptr_t first = (lo + page - 1) / page * page, last = hi / page * page;  // whole pages inside
    if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

void MappedFile::unmap() noexcept {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
}

}  // namespace ecf8
