// CpuOps: the op table (runtime/ops.h) on the CPU backend: each op runs its kernels/cpu function at once, on
// the calling thread (a stream's work item, or a direct Model::forward); the stream argument orders nothing.
#pragma once

#include <memory>

#include "runtime/ops.h"

namespace ecf8 {

class Backend;

// backend must outlive the table; its scratch is the backend's memory.
std::unique_ptr<Ops> make_cpu_ops(Backend& backend);

}  // namespace ecf8
