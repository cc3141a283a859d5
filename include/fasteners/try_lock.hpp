// Take a lock only if it can be had now.
//
//   if (auto guard = fasteners::try_lock(mutex)) {
//     // held until guard is destroyed
//   } else {
//     // somebody else holds it; nothing was waited for
//   }
//
// The guard is a std::unique_lock (std::shared_lock for try_read_lock): it
// converts to true if it owns the lock, releases it when destroyed, and can be
// moved, released early (unlock()) or let go of (release()). Works with any
// Lockable: std mutexes, reader_writer_lock, interprocess_lock and
// interprocess_reader_writer_lock.
#pragma once

#include <chrono>
#include <mutex>
#include <shared_mutex>

namespace fasteners {

// One attempt at `lock`, never waits.
template <class Lockable>
[[nodiscard]] std::unique_lock<Lockable> try_lock(Lockable& lock) {
  return std::unique_lock<Lockable>(lock, std::try_to_lock);
}

// Waits at most `timeout` for `lock` (a TimedLockable).
template <class TimedLockable, class Rep, class Period>
[[nodiscard]] std::unique_lock<TimedLockable> try_lock(TimedLockable& lock,
                                                       const std::chrono::duration<Rep, Period>& timeout) {
  return std::unique_lock<TimedLockable>(lock, timeout);
}

// One attempt at a shared (read) lock, never waits.
template <class SharedLockable>
[[nodiscard]] std::shared_lock<SharedLockable> try_read_lock(SharedLockable& lock) {
  return std::shared_lock<SharedLockable>(lock, std::try_to_lock);
}

// Waits at most `timeout` for a shared (read) lock.
template <class SharedTimedLockable, class Rep, class Period>
[[nodiscard]] std::shared_lock<SharedTimedLockable> try_read_lock(SharedTimedLockable& lock,
                                                                  const std::chrono::duration<Rep, Period>& timeout) {
  return std::shared_lock<SharedTimedLockable>(lock, timeout);
}

}  // namespace fasteners
