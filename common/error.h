// The one error type of ecf8 and its check-macro family.
// ECF8_CHECK(cond, msg) throws ecf8::Error with file, line, the failed condition and a message built
// with operator<<. CUDA_CHECK, CUBLAS_CHECK, NCCL_CHECK and MPI_CHECK come from one generator macro.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace ecf8 {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

[[noreturn]] inline void throw_error(const char* file, int line, const char* kind, const std::string& msg) {
    std::ostringstream os;
    os << msg << " [" << kind << " at " << file << ":" << line << "]";
    throw Error(os.str());
}

}  // namespace ecf8

#define ECF8_STRINGIFY_(x) #x
#define ECF8_STRINGIFY(x) ECF8_STRINGIFY_(x)

// ECF8_CHECK(cond, a << b << c): user-facing messages name the file, tensor or field involved.
#define ECF8_CHECK(cond, msg)                                                                    \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            std::ostringstream ecf8_os_;                                                         \
            ecf8_os_ << msg;                                                                     \
            ::ecf8::throw_error(__FILE__, __LINE__, "check '" #cond "' failed", ecf8_os_.str()); \
        }                                                                                        \
    } while (0)

#define ECF8_FAIL(msg)                                                    \
    do {                                                                  \
        std::ostringstream ecf8_os_;                                      \
        ecf8_os_ << msg;                                                  \
        ::ecf8::throw_error(__FILE__, __LINE__, "error", ecf8_os_.str()); \
    } while (0)

// Generates a checker for a library whose calls return a status code.
// ok: the success value; describe(status): a const char* explanation.
#define ECF8_STATUS_CHECK(lib, expr, ok, describe)                                                 \
    do {                                                                                           \
        auto ecf8_status_ = (expr);                                                                \
        if (ecf8_status_ != (ok)) {                                                                \
            std::ostringstream ecf8_os_;                                                           \
            ecf8_os_ << lib << " call '" #expr "' failed: " << describe(ecf8_status_) << " (code " \
                     << static_cast<long long>(ecf8_status_) << ")";                               \
            ::ecf8::throw_error(__FILE__, __LINE__, lib, ecf8_os_.str());                          \
        }                                                                                          \
    } while (0)

#define CUDA_CHECK(expr) ECF8_STATUS_CHECK("CUDA", expr, cudaSuccess, cudaGetErrorString)
#define CUBLAS_CHECK(expr) ECF8_STATUS_CHECK("cuBLAS", expr, CUBLAS_STATUS_SUCCESS, cublasGetStatusString)
#define NCCL_CHECK(expr) ECF8_STATUS_CHECK("NCCL", expr, ncclSuccess, ncclGetErrorString)
#define MPI_CHECK(expr) ECF8_STATUS_CHECK("MPI", expr, MPI_SUCCESS, ::ecf8::mpi_error_string)
