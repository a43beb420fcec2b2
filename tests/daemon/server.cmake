# Tests of `tallyd serve` (the township server): included by
# tests/daemon/CMakeLists.txt.
if(TARGET daemon_test_syncsrv)
  target_link_libraries(daemon_test_syncsrv PRIVATE tally_server)
endif()

add_executable(srv_testc srv_testc.c)
target_link_libraries(srv_testc PRIVATE tally_server)

# One ctest test per case (see tally_py_cases in CMakeLists.txt).
function(tally_server_cases)
  foreach(case ${ARGN})
    add_test(NAME daemon/server_test/${case}
             COMMAND ${PYTHON3} -B ${CMAKE_CURRENT_SOURCE_DIR}/server_test.py ${case}
             WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
    set_tests_properties(daemon/server_test/${case} PROPERTIES
      TIMEOUT 120
      ENVIRONMENT "TALLY_BINARY_DIR=${PROJECT_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1")
  endforeach()
endfunction()
tally_server_cases(roundtrip replay_and_gap credentials cross_village limits rate_limit
  tls_refused slow_client kill_between_commit_and_answer restore_epoch clock_ahead)

# sslscan of the real `tallyd serve` (TLS 1.2/1.3, intermediate suites only).
add_test(NAME daemon/server_sslscan
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/server_sslscan.sh ${PROJECT_BINARY_DIR})
set_tests_properties(daemon/server_sslscan PROPERTIES TIMEOUT 90 SKIP_RETURN_CODE 77)

# The dashboard and the end-to-end demo (tests/daemon/dashboard.cmake).
include(${CMAKE_CURRENT_SOURCE_DIR}/dashboard.cmake OPTIONAL)
# `tally report --from URL` (tests/daemon/report_from.cmake).
include(${CMAKE_CURRENT_SOURCE_DIR}/report_from.cmake OPTIONAL)
