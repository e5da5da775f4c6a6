# `pviommu run` on awkward inputs (trace format sections 6 and 8): a directory, a missing file and
# an empty file each get `FILE: message` with the reason; `-` reads standard input; one malformed
# file does not stop the others: every file is reported, the good ones run, exit 2 overall.
# Needs -DPVIOMMU=... -DGOOD=<passing trace> -DBAD=<malformed trace> -DWORK=<scratch folder>.
file(MAKE_DIRECTORY ${WORK})
file(WRITE ${WORK}/empty.trace "")
file(WRITE ${WORK}/comments.trace "# nothing but a comment\n\n")

function(expect_run rc_want err_want)
  execute_process(COMMAND ${PVIOMMU} run ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL ${rc_want})
    message(FATAL_ERROR "run ${ARGN}: exit ${rc}, want ${rc_want}\nstdout: ${out}\nstderr: ${err}")
  endif()
  string(FIND "${err}" "${err_want}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "run ${ARGN}: want '${err_want}' on stderr, got: ${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

expect_run(2 "${WORK}: cannot read: Is a directory" ${WORK})
expect_run(2 "${WORK}/missing.trace: cannot read: No such file or directory" ${WORK}/missing.trace)
expect_run(2 "${WORK}/empty.trace: no statements (empty trace)" ${WORK}/empty.trace)
expect_run(2 "${WORK}/comments.trace: no statements (empty trace)" ${WORK}/comments.trace)

# Every file reported: the malformed one on stderr, the good one still runs (its summary).
expect_run(2 "${BAD}:" ${BAD} ${GOOD} ${WORK})
string(FIND "${out}" "${GOOD}: " pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "want ${GOOD}'s summary on stdout after a malformed file, got: ${out}")
endif()

# `-` reads standard input.
execute_process(COMMAND ${PVIOMMU} run - INPUT_FILE ${GOOD} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "^<stdin>: [1-9][0-9]* statements")
  message(FATAL_ERROR "run - < ${GOOD}: exit ${rc}\nstdout: ${out}\nstderr: ${err}")
endif()
execute_process(COMMAND ${PVIOMMU} run - INPUT_FILE ${BAD} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "^<stdin>:[0-9]+: ")
  message(FATAL_ERROR "run - < ${BAD}: exit ${rc}, want 2 and <stdin>:LINE:\nstderr: ${err}")
endif()
