// The bottom layer: one OS or server object that carries a process-level
// lock (an open file description, a classic fcntl descriptor, a Windows
// handle, a PostgreSQL session). It knows nothing of threads: the resource
// record above it (resource_record.hpp) is the only in-process arbiter, and
// calls a back end from one thread at a time.
//
// One implementation per platform or server: posix/file_backend_ofd.cpp,
// posix/file_backend_classic.cpp, windows/file_backend.cpp, postgres/.
#pragma once

#include <fasteners/detail/lock_kind.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace fasteners::detail {

// A deadline is one value passed down: deadline::min() (or any time already
// past) is a single try, deadline::max() waits for ever.
using deadline = std::chrono::steady_clock::time_point;
inline constexpr deadline one_try = deadline::min();
inline constexpr deadline no_deadline = deadline::max();

class lock_backend {
 public:
  lock_backend() = default;
  virtual ~lock_backend() = default;
  lock_backend(const lock_backend&) = delete;
  lock_backend& operator=(const lock_backend&) = delete;

  // Takes the process-level lock of `kind`. True once held; false if somebody
  // else still held a conflicting lock at `until` (always after at least one
  // try); any other failure throws std::system_error naming the resource.
  // The record calls it only while this process holds nothing through this
  // back end, with one exception: while a helper thread's wait for the
  // exclusive lock, abandoned by its waiter, is still blocked in lock(), the
  // record may take, release and keep shared locks through the same back end
  // (fcntl converts locks of one owner in place; readers must not wait for a
  // writer that gave up). It may throw abi::__forced_unwind (pthread_cancel): then it
  // holds nothing. Back ends that cannot wait with a deadline (waits_until()
  // false) are called with one_try or no_deadline only, unless the record
  // cannot start a helper thread; then they must wait without hanging past
  // `until` (a bounded poll).
  virtual bool lock(lock_kind kind, deadline until) = 0;
  // Releases what lock() took. Must not block for long. Never throws for a
  // lock that is already gone (a lost session); throws std::system_error for
  // a real failure.
  virtual void unlock() = 0;
  // Turns the exclusive lock into a shared one with no moment in between at
  // which another process could take the exclusive lock.
  virtual void downgrade() = 0;
  // Whether lock() itself can wait until a finite deadline without polling
  // (Windows overlapped waits, PostgreSQL's lock_timeout). Where it cannot
  // (fcntl has no timed F_SETLKW), the record waits on a helper thread.
  virtual bool waits_until() const noexcept = 0;

  // The descriptor (POSIX) or HANDLE (Windows) that carries the lock, or -1.
  virtual std::intptr_t native_handle() const noexcept { return -1; }
  // Runs in a fork child, inside the record table's atfork handler, for every
  // back end the parent had: let go of the inherited OS object WITHOUT
  // releasing the parent's lock (and without letting it outlive the parent:
  // an inherited open file description would keep an OFD lock alive).
  // Async-signal-safe calls only (close(2) is fine; no PQfinish).
  virtual void forget_after_fork() noexcept {}
  // Another back end opened on the same resource in a race with this one's
  // record (two threads resolving one new file at once). Keep it or close it;
  // closing must not drop this back end's lock (classic fcntl: it would).
  virtual void absorb_duplicate(lock_backend* other) noexcept { delete other; }
  // How the resource is named in error messages: "'/var/lock/x.lock'" or
  // "postgres lock 'nightly'".
  virtual std::string describe() const = 0;
};

}  // namespace fasteners::detail
