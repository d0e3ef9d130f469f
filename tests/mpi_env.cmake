# Open MPI settings for tests: allow running as root (CI runs as root), oversubscribe the 2-core
# machine, and avoid the CMA single-copy path that containers forbid.
set(ECF8_MPIEXEC_FLAGS --oversubscribe)
set(ECF8_MPI_TEST_ENV
    "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_btl_vader_single_copy_mechanism=none;OMPI_MCA_rmaps_base_oversubscribe=1")
# Open MPI and its dlopen'ed components leak at MPI_Finalize (unnamed modules, so LSan suppressions cannot
# match them): leak checking is off for MPI tests only; every other sanitized test still checks leaks.
if(ECF8_SANITIZE)
    list(APPEND ECF8_MPI_TEST_ENV "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
endif()
