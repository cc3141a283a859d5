# FASTENERS_POSTGRES=AUTO|ON|OFF: find libpq (pkg-config, else CMake's
# FindPostgreSQL) and build src/postgres as fasteners::postgres. Sets
# FASTENERS_HAVE_POSTGRES.
set(FASTENERS_HAVE_POSTGRES OFF)
if(NOT FASTENERS_POSTGRES STREQUAL "OFF" AND NOT WIN32)
  set(FASTENERS_LIBPQ_TARGET "")
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(FASTENERS_LIBPQ QUIET IMPORTED_TARGET libpq)
    if(FASTENERS_LIBPQ_FOUND)
      set(FASTENERS_LIBPQ_TARGET PkgConfig::FASTENERS_LIBPQ)
      set(FASTENERS_LIBPQ_REQUIRES "libpq")
    endif()
  endif()
  if(NOT FASTENERS_LIBPQ_TARGET)
    find_package(PostgreSQL QUIET)
    if(PostgreSQL_FOUND)
      set(FASTENERS_LIBPQ_TARGET PostgreSQL::PostgreSQL)
      set(FASTENERS_LIBPQ_REQUIRES "")
    endif()
  endif()
  if(FASTENERS_LIBPQ_TARGET)
    set(FASTENERS_HAVE_POSTGRES ON)
  elseif(FASTENERS_POSTGRES STREQUAL "ON")
    message(FATAL_ERROR "FASTENERS_POSTGRES=ON but libpq was not found (Debian: apt-get install libpq-dev)")
  else()
    message(STATUS "fasteners: libpq not found, the postgres component is not built")
  endif()
endif()
if(FASTENERS_HAVE_POSTGRES)
  message(STATUS "fasteners: building the postgres component (libpq: ${FASTENERS_LIBPQ_TARGET})")
  add_subdirectory(${PROJECT_SOURCE_DIR}/src/postgres ${PROJECT_BINARY_DIR}/src/postgres)
endif()

if(FASTENERS_HAVE_POSTGRES AND FASTENERS_INSTALL)
  install(TARGETS fasteners_postgres EXPORT fastenersPostgresTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(EXPORT fastenersPostgresTargets NAMESPACE fasteners:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fasteners)
  # FASTENERS_PC_* come from the top-level CMakeLists.txt.
  configure_file(${PROJECT_SOURCE_DIR}/cmake/fasteners-postgres.pc.in
                 ${PROJECT_BINARY_DIR}/fasteners-postgres.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/fasteners-postgres.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()
