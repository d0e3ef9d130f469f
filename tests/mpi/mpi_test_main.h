// The main() of every MPI test (tests/mpi/mpi_test_main.cpp): MPI around GoogleTest. Rank 0 prints the
// report; other ranks print only their failures, prefixed with the rank; the exit status is non-zero when
// any rank fails. Tests reach the MPI session through mpi_test_session().
#pragma once

#include <string>

#include "launcher/mpi_world.h"

namespace ecf8 {

const MpiSession& mpi_test_session();
// Rank 0 removes `dir` (recursively) once every test has run on every rank.
void remove_after_tests(const std::string& dir);

}  // namespace ecf8
