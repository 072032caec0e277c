# cmake -DEXPECTED=<code> -DCOMMAND=<program> -DARGS="<arguments>" -P expect_exit_code.cmake
# Runs the program and fails unless it exits with exactly EXPECTED (ctest's WILL_FAIL accepts
# any failure, crashes included).
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND "${COMMAND}" ${args} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
if(NOT rc STREQUAL "${EXPECTED}")
  message(FATAL_ERROR "${COMMAND} ${ARGS}: exit status ${rc}, expected ${EXPECTED}")
endif()
