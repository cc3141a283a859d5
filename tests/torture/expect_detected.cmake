# Runs the torture program in a deliberately broken mode and passes only if the
# run failed with the expected detector's exit bit set: a crash, a usage error
# or a pass all fail the test, so the detector itself is what is proven.
#   cmake -DEXPECT_BIT=N -P expect_detected.cmake -- PROGRAM ARGS...
if(NOT DEFINED EXPECT_BIT)
  message(FATAL_ERROR "expect_detected.cmake: EXPECT_BIT is not set")
endif()
# Bits above this one are not detector codes (64 usage, 72 setup).
set(detector_codes_end 16)

set(command)
set(after_separator OFF)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE ${last})
  if(after_separator)
    list(APPEND command "${CMAKE_ARGV${i}}")
  elseif(CMAKE_ARGV${i} STREQUAL "--")
    set(after_separator ON)
  endif()
endforeach()
if(NOT command)
  message(FATAL_ERROR "expect_detected.cmake: no command after --")
endif()

execute_process(COMMAND ${command} RESULT_VARIABLE code)
if(NOT code MATCHES "^[0-9]+$")
  message(FATAL_ERROR "the broken run did not exit normally: ${code}")
endif()
math(EXPR detected "${code} & ${EXPECT_BIT}")
if(code EQUAL 0 OR code GREATER_EQUAL detector_codes_end OR detected EQUAL 0)
  message(FATAL_ERROR "the broken run exited with ${code}; expected a detector code with bit ${EXPECT_BIT} set")
endif()
message(STATUS "detected as expected: exit status ${code} has bit ${EXPECT_BIT}")
