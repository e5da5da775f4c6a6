set( trace_tests_TESTS)
