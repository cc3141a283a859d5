// Inter-process locks backed by a lock file.
//
// Both locks here are thread-safe: one object shared by many threads behaves
// like std::timed_mutex (or std::shared_timed_mutex), and two objects on the
// same file exclude each other inside one process exactly as they do across
// processes. The OS releases them when the process dies, however it dies.
//
// They take whole-file POSIX record locks (Linux: open-file-description locks;
// elsewhere classic fcntl locks behind a per-process inode table) and so
// conflict with Python fasteners and lockf(3) on the same file, both ways. On
// Windows they lock byte 0 with LockFileEx, as Python fasteners does.
//
// What they do not do:
//   * they are not recursive: a thread that would have to wait for a lock that
//     it already holds on the same file (exclusive after anything, shared after
//     exclusive, through any object) gets std::system_error with
//     std::errc::resource_deadlock_would_occur; try_lock() answers false;
//   * they are advisory: a process that does not lock can still write the file;
//   * over NFS they are only as good as the server's lock manager.
#pragma once

#include <fasteners/detail/deadline.hpp>
#include <fasteners/interprocess_options.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <type_traits>

namespace fasteners {

namespace detail {
class interprocess_lock_state;
}  // namespace detail

// An exclusive lock on a file, shared by threads and processes.
// Meets the TimedLockable requirements, so std::lock_guard, std::unique_lock
// and std::scoped_lock work with it.
class interprocess_lock {
 public:
  // Nothing is opened or created until the first lock attempt.
  explicit interprocess_lock(std::filesystem::path path, interprocess_options options = {});
  // Releases the lock if this process holds it through this object.
  ~interprocess_lock();
  interprocess_lock(const interprocess_lock&) = delete;
  interprocess_lock& operator=(const interprocess_lock&) = delete;

  // Waits in the kernel until the lock is ours. Throws std::system_error naming
  // the path if the file cannot be used, and resource_deadlock_would_occur if
  // the calling thread already holds this file.
  void lock();
  // One attempt; false if another thread or process holds it.
  bool try_lock();
  // At least one attempt, then waits at most `timeout`.
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_lock_until_steady(detail::steady_deadline_after(timeout));
  }
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return detail::attempt_until(deadline,
                                 [this](std::chrono::steady_clock::time_point d) { return try_lock_until_steady(d); });
  }
  // Throws operation_not_permitted if the calling thread does not hold it.
  void unlock();

  // True if the calling thread holds the lock through this object.
  bool owns_lock() const noexcept;
  const std::filesystem::path& path() const noexcept;
  // The open descriptor (POSIX) or HANDLE (Windows) that carries the lock, or
  // -1 before the first lock attempt. For passing the lock to a child process
  // (as fasten does); never close it, and never lock or unlock through it.
  std::intptr_t native_handle() const;

 private:
  bool try_lock_until_steady(std::chrono::steady_clock::time_point deadline);
  std::unique_ptr<detail::interprocess_lock_state> state_;
};

// A reader-writer lock on a file, shared by threads and processes: many
// readers, or one writer. Meets the SharedTimedLockable requirements.
// A thread that already reads may read again. Inside one process, threads
// (through one object or several) queue first come, first served (a running
// writer may take a free lock first, but at least every 0.5 ms the head of
// the queue is handed it), and a waiting writer holds back new readers of
// this process; between processes the kernel decides who goes next (fcntl
// locks make no promise of writer preference).
class interprocess_reader_writer_lock {
 public:
  explicit interprocess_reader_writer_lock(std::filesystem::path path, interprocess_options options = {});
  ~interprocess_reader_writer_lock();
  interprocess_reader_writer_lock(const interprocess_reader_writer_lock&) = delete;
  interprocess_reader_writer_lock& operator=(const interprocess_reader_writer_lock&) = delete;

  // Exclusive (write) side.
  void lock();
  bool try_lock();
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_lock_until_steady(detail::steady_deadline_after(timeout));
  }
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return detail::attempt_until(deadline,
                                 [this](std::chrono::steady_clock::time_point d) { return try_lock_until_steady(d); });
  }
  void unlock();
  // Turns the calling thread's write lock into a read lock atomically: no
  // writer, in any process, gets in between (the kernel converts the fcntl
  // lock in place; on Windows a shared lock is stacked on the exclusive one
  // before that is released). Throws operation_not_permitted if the calling
  // thread does not hold the write lock through this object.
  void unlock_and_lock_shared();

  // Shared (read) side.
  void lock_shared();
  bool try_lock_shared();
  template <class Rep, class Period>
  bool try_lock_shared_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_lock_shared_until_steady(detail::steady_deadline_after(timeout));
  }
  template <class Clock, class Duration>
  bool try_lock_shared_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return detail::attempt_until(
        deadline, [this](std::chrono::steady_clock::time_point d) { return try_lock_shared_until_steady(d); });
  }
  void unlock_shared();

  // Scoped guards: `auto r = rw.read_lock();` holds a read lock until r dies.
  [[nodiscard]] std::shared_lock<interprocess_reader_writer_lock> read_lock() {
    return std::shared_lock<interprocess_reader_writer_lock>(*this);
  }
  [[nodiscard]] std::unique_lock<interprocess_reader_writer_lock> write_lock() {
    return std::unique_lock<interprocess_reader_writer_lock>(*this);
  }

  // What the calling thread holds through this object.
  bool is_reader() const noexcept;
  bool is_writer() const noexcept;
  const std::filesystem::path& path() const noexcept;
  // See interprocess_lock::native_handle().
  std::intptr_t native_handle() const;

 private:
  bool try_lock_until_steady(std::chrono::steady_clock::time_point deadline);
  bool try_lock_shared_until_steady(std::chrono::steady_clock::time_point deadline);
  std::unique_ptr<detail::interprocess_lock_state> state_;
};

}  // namespace fasteners
