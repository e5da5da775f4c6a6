# CMake generated Testfile for 
# Source directory: /work/main/cli
# Build directory: /work/main/build/cli
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test([=[example:ref:01-query-caps]=] "/work/main/build/pviommu" "run" "--model=ref" "/work/main/examples/01-query-caps.trace")
set_tests_properties([=[example:ref:01-query-caps]=] PROPERTIES  _BACKTRACE_TRIPLES "/work/main/cli/CMakeLists.txt;12;add_test;/work/main/cli/CMakeLists.txt;0;")
add_test([=[example:ref:02-map-foreign-basic]=] "/work/main/build/pviommu" "run" "--model=ref" "/work/main/examples/02-map-foreign-basic.trace")
set_tests_properties([=[example:ref:02-map-foreign-basic]=] PROPERTIES  _BACKTRACE_TRIPLES "/work/main/cli/CMakeLists.txt;12;add_test;/work/main/cli/CMakeLists.txt;0;")
add_test([=[example:ref:03-map-foreign-errors]=] "/work/main/build/pviommu" "run" "--model=ref" "/work/main/examples/03-map-foreign-errors.trace")
set_tests_properties([=[example:ref:03-map-foreign-errors]=] PROPERTIES  _BACKTRACE_TRIPLES "/work/main/cli/CMakeLists.txt;12;add_test;/work/main/cli/CMakeLists.txt;0;")
add_test([=[example:ref:04-eexist-variants]=] "/work/main/build/pviommu" "run" "--model=ref" "/work/main/examples/04-eexist-variants.trace")
set_tests_properties([=[example:ref:04-eexist-variants]=] PROPERTIES  _BACKTRACE_TRIPLES "/work/main/cli/CMakeLists.txt;12;add_test;/work/main/cli/CMakeLists.txt;0;")
add_test([=[example:ref:05-not-usable]=] "/work/main/build/pviommu" "run" "--model=ref" "/work/main/examples/05-not-usable.trace")
set_tests_properties([=[example:ref:05-not-usable]=] PROPERTIES  _BACKTRACE_TRIPLES "/work/main/cli/CMakeLists.txt;12;add_test;/work/main/cli/CMakeLists.txt;0;")
add_test([=[example:ref:06-iommu-off]=] "/work/main/build/pviommu" "run" "--model=ref" "/work/main/examples/06-iommu-off.trace")
set_tests_properties([=[example:ref:06-iommu-off]=] PROPERTIES  _BACKTRACE_TRIPLES "/work/main/cli/CMakeLists.txt;12;add_test;/work/main/cli/CMakeLists.txt;0;")
add_test([=[example:ref:07-passthrough-hwdom]=] "/work/main/build/pviommu" "run" "--model=ref" "/work/main/examples/07-passthrough-hwdom.trace")
set_tests_properties([=[example:ref:07-passthrough-hwdom]=] PROPERTIES  _BACKTRACE_TRIPLES "/work/main/cli/CMakeLists.txt;12;add_test;/work/main/cli/CMakeLists.txt;0;")
add_test([=[example:ref:08-check-order]=] "/work/main/build/pviommu" "run" "--model=ref" "/work/main/examples/08-check-order.trace")
set_tests_properties([=[example:ref:08-check-order]=] PROPERTIES  _BACKTRACE_TRIPLES "/work/main/cli/CMakeLists.txt;12;add_test;/work/main/cli/CMakeLists.txt;0;")
add_test([=[cli:verify]=] "/work/main/build/pviommu" "verify")
set_tests_properties([=[cli:verify]=] PROPERTIES  _BACKTRACE_TRIPLES "/work/main/cli/CMakeLists.txt;22;add_test;/work/main/cli/CMakeLists.txt;0;")
