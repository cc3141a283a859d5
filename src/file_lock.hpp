// The bottom layer: one OS lock on one lock file. No thread semantics here;
// the layer above (interprocess_lock.cpp) makes it thread-safe, detects
// self-deadlock and guards against fork. One implementation per platform:
// posix/file_lock_ofd.cpp, posix/file_lock_classic.cpp, windows/file_lock.cpp.
#pragma once

#include <fasteners/interprocess_lock.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace fasteners::detail {

enum class lock_kind { shared, exclusive };

// Identifies a file within this machine (device and inode, or on Windows the
// volume serial number and file index).
struct file_id {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  friend bool operator==(const file_id& a, const file_id& b) noexcept {
    return a.device == b.device && a.inode == b.inode;
  }
  friend bool operator!=(const file_id& a, const file_id& b) noexcept { return !(a == b); }
  friend bool operator<(const file_id& a, const file_id& b) noexcept {
    return a.device != b.device ? a.device < b.device : a.inode < b.inode;
  }
};

using deadline = std::chrono::steady_clock::time_point;

class file_lock {
 public:
  // Opens (creating if needed) the lock file. Throws std::system_error naming
  // the path when it cannot be used as a lock file.
  file_lock(const std::filesystem::path& path, const interprocess_options& options);
  // Closes the file. Callers release first; after fork() in a child the
  // destructor must not drop the parent's lock, and it does not.
  ~file_lock();
  file_lock(const file_lock&) = delete;
  file_lock& operator=(const file_lock&) = delete;

  file_id id() const noexcept;
  // The descriptor (POSIX) or HANDLE (Windows) that carries the lock.
  std::intptr_t native_handle() const noexcept;

  // One attempt: true if acquired, false if someone else holds a conflicting
  // lock. Any other failure throws.
  bool try_acquire(lock_kind kind);
  // Waits in the kernel; EINTR is retried.
  void acquire(lock_kind kind);
  // Waits until `until` at the latest (a past deadline is one attempt). The
  // layer above has just made a try_acquire(), so this need not try first.
  bool acquire_until(lock_kind kind, deadline until);
  // Releases what this object holds.
  void release();
  // Called in a child process on a lock inherited from its parent: forget the
  // lock without releasing it (it is the parent's) before destruction.
  void abandon_after_fork() noexcept;

  // "ofd", "classic-fcntl" or "LockFileEx", for diagnostics and benchmarks.
  static const char* backend_name() noexcept;

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

// Counts forks: a child sees a different value than its parent had. Always 0
// where there is no fork().
unsigned process_generation() noexcept;

}  // namespace fasteners::detail
