// Table of dtype names and sizes; dispatch by table rather than switch.
#include "codec/dtype.h"

#include "common/error.h"

namespace ecf8 {
namespace {

struct DTypeRow {
    const char* name;
    size_t size;
};
constexpr DTypeRow kRows[kNumDTypes] = {
    {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"BF16", 2}, {"F16", 2}, {"F32", 4}, {"F64", 8}, {"I8", 1},   {"I16", 2},
    {"I32", 4},     {"I64", 8},     {"U8", 1},   {"U16", 2}, {"U32", 4}, {"U64", 8}, {"BOOL", 1},
};

}  // namespace

size_t dtype_size(DType dt) { return kRows[static_cast<int>(dt)].size; }
const char* dtype_name(DType dt) { return kRows[static_cast<int>(dt)].name; }

bool parse_dtype(const std::string& name, DType* out) {
    for (int i = 0; i < kNumDTypes; ++i) {
        if (name == kRows[i].name) {
            *out = static_cast<DType>(i);
            return true;
        }
    }
    return false;
}

DType dtype_from_name(const std::string& name) {
    DType dt{};
    if (!parse_dtype(name, &dt)) {
        std::string known;
        for (int i = 0; i < kNumDTypes; ++i) known += std::string(i ? ", " : "") + kRows[i].name;
        ECF8_FAIL("unknown dtype '" << name << "' (known: " << known << ")");
    }
    return dt;
}

}  // namespace ecf8
