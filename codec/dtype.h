// Element dtypes as safetensors names them, with their sizes. Shared by the codec, sharding and runtime.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ecf8 {

enum class DType : uint8_t {
    F8_E4M3 = 0,
    F8_E5M2 = 1,
    BF16 = 2,
    F16 = 3,
    F32 = 4,
    F64 = 5,
    I8 = 6,
    I16 = 7,
    I32 = 8,
    I64 = 9,
    U8 = 10,
    U16 = 11,
    U32 = 12,
    U64 = 13,
    BOOL = 14,
};
constexpr int kNumDTypes = 15;

size_t dtype_size(DType dt);                            // bytes per element
const char* dtype_name(DType dt);                       // "F8_E4M3", "BF16", ...
bool parse_dtype(const std::string& name, DType* out);  // false when the name is unknown
DType dtype_from_name(const std::string& name);         // throws ecf8::Error listing the known names

}  // namespace ecf8
