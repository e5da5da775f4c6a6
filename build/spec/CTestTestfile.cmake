# CMake generated Testfile for 
# Source directory: /work/main/spec
# Build directory: /work/main/build/spec
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/spec/spec_tests_include-b858cb2.cmake")
