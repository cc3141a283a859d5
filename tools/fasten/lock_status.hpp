// The platform half of fasten, part 2: what state a lock file is in, found
// without taking the lock and without creating the file. status_posix.cpp
// (fcntl F_OFD_GETLK / F_GETLK probes, and /proc on Linux for the holders).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace fasten {

enum class lock_state { missing, free, shared, exclusive };

struct lock_holder {
  long pid = 0;
  std::string name;  // process name, if known
  bool exclusive = false;
};

struct lock_status {
  lock_state state = lock_state::missing;
  // Processes holding the fasteners (fcntl record) lock, where the OS can tell.
  std::vector<lock_holder> holders;
  // Processes holding a flock(2) lock on the file (flock(1), for instance):
  // it does not conflict with fasten's lock, which is worth saying.
  std::vector<lock_holder> flock_holders;
};

// One consistent answer: the state and the holders describe the same moment
// (on Linux, re-read until they agree, for up to about a second; failing
// that, the state without holders). Throws std::system_error (with the OS
// error) if the path exists but cannot be a lock file: a directory, a FIFO, a
// symbolic link, unreadable...
lock_status query_lock_status(const std::filesystem::path& path);

}  // namespace fasten
