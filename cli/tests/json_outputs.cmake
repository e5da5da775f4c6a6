# Every command's --json output is one valid JSON document on stdout, on passing, failing and
# malformed paths alike (nothing else on stdout), with the failures inside it. Parsed with CMake's
# own JSON reader (string(JSON)), so no other tool is needed.
# Needs -DPVIOMMU=... -DGOOD=<passing trace> -DBAD=<malformed trace> -DWORK=<scratch folder>.
file(MAKE_DIRECTORY ${WORK})
file(WRITE ${WORK}/fails.trace
     "host\ndomain 0 hardware iommu_hw ram=4\ncall 0 query_caps\nexpect status=-EEXIST\n")

# Runs pviommu ARGN, requires exit rc_want (ANY: any status) and valid JSON on stdout; leaves
# it in `json`.
function(json_of rc_want)
  execute_process(COMMAND ${PVIOMMU} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc_want STREQUAL "ANY" AND NOT rc EQUAL ${rc_want})
    message(FATAL_ERROR "${ARGN}: exit ${rc}, want ${rc_want}\nstdout: ${out}\nstderr: ${err}")
  endif()
  string(JSON type ERROR_VARIABLE jerr TYPE "${out}")
  if(jerr)
    message(FATAL_ERROR "${ARGN}: stdout is not JSON (${jerr}):\n${out}")
  endif()
  set(json "${out}" PARENT_SCOPE)
endfunction()

function(want_equal what got want)
  if(NOT "${got}" STREQUAL "${want}")
    message(FATAL_ERROR "${what}: got '${got}', want '${want}'")
  endif()
endfunction()

# run: pass, an expectation failed (the failure inside the JSON), malformed next to a good file.
json_of(0 run --json ${GOOD})
string(JSON v GET "${json}" version)
string(JSON e GET "${json}" files 0 exit)
want_equal("run pass: files[0].exit" "${e}" 0)
json_of(1 run --json ${WORK}/fails.trace)
string(JSON f GET "${json}" files 0 failures 0)
string(FIND "${f}" "expected status=-EEXIST, got 0" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "run --json: want the failure inside the JSON, got ${json}")
endif()
json_of(2 run --json ${BAD} ${GOOD} ${WORK})
string(JSON n LENGTH "${json}" files)
want_equal("run malformed: files" "${n}" 3)
string(JSON err GET "${json}" files 0 error)
string(JSON good GET "${json}" files 1 exit)
want_equal("run malformed: the good file still ran" "${good}" 0)
json_of(1 run --json --explain --check=end -v --dump ${WORK}/fails.trace)

# diff: files (ref against a second ref), a malformed file, a random campaign.
json_of(0 diff --against=ref --json ${GOOD})
string(JSON same GET "${json}" files 0 same)
want_equal("diff: same" "${same}" ON)
json_of(2 diff --against=ref --json ${BAD} ${GOOD})
json_of(0 diff --against=ref --random=3 --seed=1 --steps=20 --json)
string(JSON v GET "${json}" version)

# verify (without its Z3 part), prove (one obligation family at small width), props (few tests).
# prove's verdict on a subset is prove's business (its coverage rows need every transition):
# here only its JSON is checked.
json_of(0 verify --no-prove --json)
string(JSON v GET "${json}" version)
json_of(ANY prove --json --small --only map_page)
json_of(0 props --json --tests=5)
string(JSON v GET "${json}" version)
string(JSON p GET "${json}" properties 0 passed)
want_equal("props: properties[0].passed" "${p}" ON)
# A planted bug asked for: one JSON document (exit 2 in a build without mutants, 1 with them).
json_of(ANY props --json --mutant=1 --tests=5)
