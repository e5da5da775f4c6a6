# Runs `pviommu diff --against=ref GOOD BAD` and requires exit 2, a `BAD:LINE:` message on stderr,
# and GOOD still diffed (every file is reported; a malformed one does not stop the others).
execute_process(COMMAND ${PVIOMMU} diff --against=ref ${GOOD} ${BAD}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "exit ${rc}, want 2\nstdout: ${out}\nstderr: ${err}")
endif()
string(FIND "${err}" "${BAD}:" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "want '${BAD}:LINE: ...' on stderr, got: ${err}")
endif()
string(FIND "${out}" "${GOOD}: same on ref and ref#2" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "want ${GOOD} diffed all the same, got stdout: ${out}")
endif()
