# Cross-compiling for 64-bit Windows with Debian's mingw-w64 (the -posix
# thread model: the win32 one has no std::thread or std::mutex). Programs are
# linked statically so that they run under Wine without extra DLLs, and CTest
# runs them through Wine.
#
#   cmake -S . -B build-windows -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-mingw-w64.cmake
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(FASTENERS_MINGW_PREFIX x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${FASTENERS_MINGW_PREFIX}-gcc-posix)
set(CMAKE_CXX_COMPILER ${FASTENERS_MINGW_PREFIX}-g++-posix)
set(CMAKE_RC_COMPILER ${FASTENERS_MINGW_PREFIX}-windres)

set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")

set(CMAKE_FIND_ROOT_PATH /usr/${FASTENERS_MINGW_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

if(NOT DEFINED CMAKE_CROSSCOMPILING_EMULATOR)
  find_program(FASTENERS_WINE NAMES wine64 wine PATHS /usr/lib/wine NO_CMAKE_FIND_ROOT_PATH)
  if(FASTENERS_WINE)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${FASTENERS_WINE})
  endif()
endif()
