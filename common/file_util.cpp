// check_output_path / write_file_atomic / read_file / fsync_dir.
#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace ecf8 {

namespace {

const char* file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    return "a special file";
}

}  // namespace

void check_output_path(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return;  // missing (or unreachable): the write itself reports it
    ECF8_CHECK(S_ISREG(st.st_mode), "output '" << path << "' exists and is " << file_kind(st.st_mode)
                                               << ", not a regular file; choose another output path");
}

void write_file_atomic(const std::string& path, const std::string& contents) {
    check_output_path(path);
    const std::string tmp = path + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    ECF8_CHECK(f != nullptr, "cannot create '" << tmp << "': " << std::strerror(errno));
    int err = 0;
    if (std::fwrite(contents.data(), 1, contents.size(), f) != contents.size()) err = errno;
    if (err == 0 && (std::fflush(f) != 0 || ::fsync(fileno(f)) != 0)) err = errno;
    if (std::fclose(f) != 0 && err == 0) err = errno;
    if (err == 0 && std::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
    if (err != 0) {
        std::remove(tmp.c_str());
        ECF8_FAIL("cannot write '" << path << "': " << std::strerror(err));
    }
    fsync_dir(std::filesystem::path(path).parent_path().string());
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    ECF8_CHECK(in, "cannot open '" << path << "': " << std::strerror(errno));
    std::ostringstream os;
    os << in.rdbuf();
    ECF8_CHECK(!in.bad(), "cannot read '" << path << "'");
    return os.str();
}

void fsync_dir(const std::string& dir) {
    const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

}  // namespace ecf8
