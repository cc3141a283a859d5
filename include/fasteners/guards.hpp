// Scoped guards that clang's thread-safety analysis can follow.
//
//   fasteners::write_guard guard{lock};   // lock.lock() now, lock.unlock() at scope exit
//   fasteners::read_guard guard{lock};    // lock.lock_shared() now, lock.unlock_shared() at scope exit
//
// They behave like std::lock_guard and a shared std::lock_guard would, and work
// with any Lockable / SharedLockable. Use std::unique_lock / std::shared_lock
// where you need to move, release or re-take the lock; use these where you
// want clang (-Wthread-safety) to check that guarded data is touched only
// under the lock.
#pragma once

#include <fasteners/thread_annotations.hpp>

namespace fasteners {

// Holds `lock` exclusively for the guard's lifetime. Not copyable, not movable.
template <class Lockable>
class [[nodiscard]] FASTENERS_SCOPED_CAPABILITY write_guard {
 public:
  explicit write_guard(Lockable& lock) FASTENERS_ACQUIRE(lock) : lock_(lock) { lock_.lock(); }
  ~write_guard() FASTENERS_RELEASE() { lock_.unlock(); }
  write_guard(const write_guard&) = delete;
  write_guard& operator=(const write_guard&) = delete;

 private:
  Lockable& lock_;
};

// Holds `lock` shared (for reading) for the guard's lifetime. Not copyable, not movable.
template <class SharedLockable>
class [[nodiscard]] FASTENERS_SCOPED_CAPABILITY read_guard {
 public:
  explicit read_guard(SharedLockable& lock) FASTENERS_ACQUIRE_SHARED(lock) : lock_(lock) { lock_.lock_shared(); }
  ~read_guard() FASTENERS_RELEASE() { lock_.unlock_shared(); }
  read_guard(const read_guard&) = delete;
  read_guard& operator=(const read_guard&) = delete;

 private:
  SharedLockable& lock_;
};

}  // namespace fasteners
