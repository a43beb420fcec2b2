# `tally report --from URL` against a real `tallyd serve`: included by
# server.cmake.
foreach(case formats_match refused keeps_earlier)
  add_test(NAME daemon/report_from/${case}
           COMMAND ${PYTHON3} -B ${CMAKE_CURRENT_SOURCE_DIR}/report_from_test.py ${case}
           WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(daemon/report_from/${case} PROPERTIES TIMEOUT 120
    ENVIRONMENT "TALLY_BINARY_DIR=${PROJECT_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1")
endforeach()
