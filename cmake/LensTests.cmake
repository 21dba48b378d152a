# lens_discover_tests(TARGET [LABELS label...] [SLOW gtest-filter] [PROPERTIES name value...])
#
# gtest_discover_tests with labels that work: it writes PROPERTIES into the generated
# test files one word at a time, so a list such as LABELS "e2e;metrics" arrives as
# `LABELS e2e metrics` and only the first label is kept. Here the labels are set by a
# script ctest includes after the discovered tests.
#
# The tests matching SLOW (a --gtest_filter pattern, ':'-separated names) also get the
# label `slow`: they wait on processes, kills, restarts or the clock. scripts/test.sh runs
# them in the first pass only, not again under the sanitizers (what those can find there,
# the fast tests reach too). PROPERTIES: one value per property.
function(lens_discover_tests target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "SLOW" "LABELS;PROPERTIES")
  set(script ${CMAKE_CURRENT_BINARY_DIR}/${target}_labels.cmake)
  if(arg_SLOW)
    gtest_discover_tests(${target} DISCOVERY_TIMEOUT 60 TEST_FILTER "-${arg_SLOW}" TEST_LIST ${target}_fast
      PROPERTIES ${arg_PROPERTIES})
    gtest_discover_tests(${target} DISCOVERY_TIMEOUT 60 TEST_FILTER "${arg_SLOW}" TEST_LIST ${target}_slow
      PROPERTIES ${arg_PROPERTIES})
  else()
    gtest_discover_tests(${target} DISCOVERY_TIMEOUT 60 TEST_LIST ${target}_fast PROPERTIES ${arg_PROPERTIES})
  endif()
  file(WRITE ${script}
    "if(${target}_fast)\n  set_tests_properties(\${${target}_fast} PROPERTIES LABELS \"${arg_LABELS}\")\nendif()\n"
    "if(${target}_slow)\n  set_tests_properties(\${${target}_slow} PROPERTIES LABELS \"${arg_LABELS};slow\")\nendif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${script})
endfunction()
