# Scale (issue 18 item 4): a hardware domain of RAM frames and STATEMENTS statements of maps,
# lookups, balloons, populates, drains and unmaps, run with --check=end (the invariants once, at
# the end) and with --check=every (after every statement, incrementally). A statement must cost
# what it touches, not the size of the world: ctest's TIMEOUT fails a run that rechecks or
# copies the world per statement (a full check after every statement cost 0.2 s a statement at
# 100,000 frames). Prints the wall times. The bench/RESULTS.md figure is
# -DRAM=1000000 -DSTATEMENTS=10000.
# Needs -DPVIOMMU=... -DWORK=<scratch folder> -DRAM=N -DSTATEMENTS=N.
file(MAKE_DIRECTORY ${WORK})
math(EXPR frames "${RAM} + 100000")
set(text "host frames=${frames}\ndomain 0 hardware iommu_hw ram=${RAM}\ndomain 1 guest ram=1000\n")
string(APPEND text "ioserver 1 id=0 emulator=0\n")
math(EXPR rounds "${STATEMENTS} / 8")
foreach(k RANGE 1 ${rounds})
  math(EXPR g "${k} % 1000")
  math(EXPR g1 "(${k} + 1) % 1000")
  math(EXPR b "0x100000000 + ${k}" OUTPUT_FORMAT HEXADECIMAL)
  math(EXPR b2 "0x110000000 + ${k}" OUTPUT_FORMAT HEXADECIMAL)
  math(EXPR own "${k} % ${RAM}")
  string(APPEND text
    "call 0 map_foreign_page bfn=${b} gfn=${g} domid=1 ioserver=0 flags=rw\nexpect status=0\n"
    "call 0 map_page bfn=${b2} gfn=${own} flags=rw\n"
    "call 0 lookup_foreign_page gfn=${g1} domid=1 ioserver=0\n"
    "balloon 1 gfn=${g}\npopulate 1 gfn=${g}\ndrain 1 id=0\n"
    "call 0 unmap_foreign_page bfn=${b} domid=1 ioserver=0\ncall 0 unmap_page bfn=${b2}\n")
endforeach()
string(APPEND text "check invariants\n")
file(WRITE ${WORK}/scale.trace "${text}")
# --check=end (the invariants once), then --check=every, the default: ref records the frames
# and the IOMMU entries (domain, bfn) each statement changes and the check after it covers those
# (spec::FrameLog), with one full check at the end, so a statement still costs what it touches.
foreach(mode end every)
  string(TIMESTAMP t0 "%s")
  execute_process(COMMAND ${PVIOMMU} run --check=${mode} ${WORK}/scale.trace RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(TIMESTAMP t1 "%s")
  math(EXPR secs "${t1} - ${t0}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "--check=${mode}: exit ${rc}\nstdout: ${out}\nstderr: ${err}")
  endif()
  message(STATUS "ram=${RAM}, ${STATEMENTS} statements, --check=${mode}: ${secs} s (whole seconds)\n${out}")
endforeach()
