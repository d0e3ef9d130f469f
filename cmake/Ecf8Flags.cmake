# Compiler flags shared by every ecf8 target: warnings (as errors on host code) and sanitizers.
add_library(ecf8_flags INTERFACE)
set(_host_warnings -Wall -Wextra -Wpedantic -Wshadow -Wno-unused-parameter)
# GCC 12 at -O3 reports false -Wrestrict errors inside std::string concatenation (GCC bug 105329).
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    list(APPEND _host_warnings -Wno-restrict)
endif()
if(ECF8_WERROR)
    list(APPEND _host_warnings -Werror)
endif()
target_compile_options(ecf8_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_host_warnings}>)
# No fused multiply-add contraction in host code: GCC contracts a * b + c by default in C++ (with FMA under
# -march=native), which would make the CPU kernels' rounding depend on the machine and differ from their
# CUDA twins, which round each operation explicitly (_rn intrinsics).
target_compile_options(ecf8_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-ffp-contract=off>)
target_include_directories(ecf8_flags INTERFACE ${PROJECT_SOURCE_DIR})
if(ECF8_NATIVE)
    target_compile_options(ecf8_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
endif()
if(ECF8_SANITIZE)
    set(_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    target_compile_options(ecf8_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_san}>)
    target_link_options(ecf8_flags INTERFACE ${_san})
endif()
if(ECF8_HAVE_CUDA)
    target_compile_definitions(ecf8_flags INTERFACE ECF8_HAVE_CUDA=1)
    target_compile_options(ecf8_flags INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -lineinfo>)
endif()
