# CMake generated Testfile for 
# Source directory: /work/main/trace
# Build directory: /work/main/build/trace
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/trace/trace_tests_include-b858cb2.cmake")
