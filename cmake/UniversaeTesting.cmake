# universae_add_test(NAME name COMMAND cmd args... [RANKS n] [PROCESSORS n] [LABELS l...]
#                    [TIMEOUT s] [ENVIRONMENT k=v...] [WORKING_DIRECTORY dir])
#
# The one place tests are registered. With RANKS the command runs under
# ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} n, PROCESSORS is set to n so ctest -j never
# oversubscribes, and each rank gets one OpenMP thread. PROCESSORS alone is for a driver script
# that launches ranks itself. Every test has a TIMEOUT: a deadlock
# must fail, not hang.
set(UNIVERSAE_TEST_ENV
  "OMPI_ALLOW_RUN_AS_ROOT=1" "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
  "OMPI_MCA_rmaps_base_oversubscribe=1" "OMP_NUM_THREADS=1" "OPENBLAS_NUM_THREADS=1")
# The asan preset: any finding fails the test. The slow unwinder gives leak stacks deep enough to
# reach the MPI entry point of OpenMPI's one-off allocations, which tests/sanitizers/lsan.supp names.
if(UNIVERSAE_SANITIZE)
  find_program(UNIVERSAE_SYMBOLIZER NAMES llvm-symbolizer llvm-symbolizer-14 PATHS /usr/lib/llvm-14/bin)
  list(APPEND UNIVERSAE_TEST_ENV
    "ASAN_OPTIONS=fast_unwind_on_malloc=0:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
    "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/sanitizers/lsan.supp:print_suppressions=0"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
    "ASAN_SYMBOLIZER_PATH=${UNIVERSAE_SYMBOLIZER}")
endif()

function(universae_add_test)
  cmake_parse_arguments(T "" "NAME;RANKS;PROCESSORS;TIMEOUT;WORKING_DIRECTORY" "COMMAND;LABELS;ENVIRONMENT" ${ARGN})
  if(NOT T_NAME OR NOT T_COMMAND)
    message(FATAL_ERROR "universae_add_test needs NAME and COMMAND")
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  if(NOT T_WORKING_DIRECTORY)
    set(T_WORKING_DIRECTORY "${CMAKE_BINARY_DIR}")
  endif()
  set(command ${T_COMMAND})
  set(processors 1)
  if(T_PROCESSORS)
    set(processors ${T_PROCESSORS})
  endif()
  if(T_RANKS)
    set(command ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${T_RANKS} ${MPIEXEC_PREFLAGS}
                ${T_COMMAND} ${MPIEXEC_POSTFLAGS})
    set(processors ${T_RANKS})
  endif()
  add_test(NAME ${T_NAME} COMMAND ${command} WORKING_DIRECTORY ${T_WORKING_DIRECTORY})
  set_tests_properties(${T_NAME} PROPERTIES
    TIMEOUT ${T_TIMEOUT}
    PROCESSORS ${processors}
    LABELS "${T_LABELS}"
    ENVIRONMENT "${UNIVERSAE_TEST_ENV};UNIVERSAE_SOURCE_DIR=${CMAKE_SOURCE_DIR};UNIVERSAE_BINARY=$<TARGET_FILE:universae>;UNIVERSAE_PYTHON=${UNIVERSAE_PYTHON};${T_ENVIRONMENT}")
endfunction()
