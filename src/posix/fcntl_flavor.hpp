// Which fcntl locks the POSIX back end takes: chosen at build time
// (FASTENERS_POSIX_BACKEND), one file each: fcntl_flavor_ofd.cpp and
// fcntl_flavor_classic.cpp.
#pragma once

#include "posix/posix_lock_file.hpp"

namespace fasteners::detail::posix {

struct fcntl_flavor {
  int try_command;
  int wait_command;
  // Closing any descriptor of the file drops the process's locks on it.
  bool close_drops_locks;
  const char* name;
};
const fcntl_flavor& flavor() noexcept;

}  // namespace fasteners::detail::posix
