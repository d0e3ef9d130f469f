// main() for MPI tests: see mpi_test_main.h.
#include "tests/mpi/mpi_test_main.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace ecf8 {
namespace {

const MpiSession* g_session = nullptr;
std::vector<std::string> g_remove;  // remove_after_tests

// For ranks other than 0: print only failures, prefixed with the rank.
class FailurePrinter : public testing::EmptyTestEventListener {
public:
    explicit FailurePrinter(int rank) : rank_(rank) {}
    void OnTestPartResult(const testing::TestPartResult& result) override {
        if (!result.failed()) return;
        std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                     result.line_number(), result.summary());
    }
    void OnTestEnd(const testing::TestInfo& info) override {
        if (info.result()->Failed())
            std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
    }

private:
    int rank_;
};

}  // namespace

const MpiSession& mpi_test_session() { return *g_session; }

void remove_after_tests(const std::string& dir) { g_remove.push_back(dir); }

}  // namespace ecf8

int main(int argc, char** argv) {
    ecf8::MpiSession session(&argc, &argv);
    ecf8::g_session = &session;
    testing::InitGoogleTest(&argc, argv);
    if (session.rank() != 0) {
        testing::TestEventListeners& listeners = testing::UnitTest::GetInstance()->listeners();
        delete listeners.Release(listeners.default_result_printer());
        listeners.Append(new ecf8::FailurePrinter(session.rank()));
    }
    const int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
    int failed_ranks = 0;
    MPI_Allreduce(&failed, &failed_ranks, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);  // every rank is done
    if (session.rank() == 0)
        for (const std::string& dir : ecf8::g_remove) std::filesystem::remove_all(dir);
    if (session.rank() == 0 && failed_ranks > 0)
        std::fprintf(stderr, "%d of %d ranks failed\n", failed_ranks, session.size());
    return failed_ranks > 0 ? 1 : 0;
}
