# The township dashboard and scripts/demo.sh: included by server.cmake.

# The README's first command, against the binaries of this build tree.
add_test(NAME daemon/demo
         COMMAND ${PROJECT_SOURCE_DIR}/scripts/demo.sh --no-build --bin ${PROJECT_BINARY_DIR})
set_tests_properties(daemon/demo PROPERTIES TIMEOUT 180
  ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:verify_asan_link_order=0")

# Every dashboard and report route refused without credentials and with a
# village device token; login, cookie flags, rate limit, XSS, numbers.
foreach(case refused login_and_cookie rate_limited numbers_match xss_escaped)
  add_test(NAME daemon/dash_test/${case}
           COMMAND ${PYTHON3} -B ${CMAKE_CURRENT_SOURCE_DIR}/dash_test.py ${case}
           WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(daemon/dash_test/${case} PROPERTIES TIMEOUT 120
    ENVIRONMENT "TALLY_BINARY_DIR=${PROJECT_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1")
endforeach()

# The dashboard in Debian's chromium via playwright-core (skips: 77).
add_test(NAME daemon/dash_browser
         COMMAND ${PYTHON3} -B ${CMAKE_CURRENT_SOURCE_DIR}/dash_browser.py
         WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
set_tests_properties(daemon/dash_browser PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77
  ENVIRONMENT "TALLY_BINARY_DIR=${PROJECT_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1")
