# Runs `pviommu diff --against=ref GOOD BAD` and requires exit 2, a `BAD:LINE:` message and no
# output on stdout: one malformed file means nothing runs, not even the good one.
execute_process(COMMAND ${PVIOMMU} diff --against=ref ${GOOD} ${BAD}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "exit ${rc}, want 2\nstdout: ${out}\nstderr: ${err}")
endif()
string(FIND "${err}" "${BAD}:" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "want '${BAD}:LINE: ...' on stderr, got: ${err}")
endif()
if(NOT "${out}" STREQUAL "")
  message(FATAL_ERROR "want nothing run, got stdout: ${out}")
endif()
