// An inter-thread reader-writer lock with the semantics of Python fasteners'
// ReaderWriterLock.
//
//   fasteners::reader_writer_lock lock;
//   { auto r = lock.read_lock();  /* shared with other readers */ }
//   { auto w = lock.write_lock(); /* alone */ }
//
// What it guarantees:
//   * many readers, or one writer;
//   * a waiting writer holds back *new* readers, so a steady stream of
//     readers cannot starve writers;
//   * no waiter is overtaken for ever: a thread that finds the lock free
//     may take it ahead of threads asleep waiting for it (that keeps the lock
//     busy instead of idle while a sleeper wakes up), but at least about once
//     a millisecond a release hands the lock straight to the thread that has
//     waited longest, reader or writer. Sleeping writers are woken in arrival
//     order, before sleeping readers;
//   * a thread that already reads may read again at once, even while writers
//     wait (no deadlock, unlike std::shared_mutex and pthread rwlocks);
//   * the writer may take the write lock again and may take read locks; if it
//     releases the write lock while still holding such a read lock it keeps
//     reading (a downgrade, also spelled unlock_and_lock_shared());
//   * mistakes are reported, not undefined: a reader that asks to wait for the
//     write lock gets std::system_error(std::errc::resource_deadlock_would_occur)
//     (its try_lock() answers false), and releasing what the calling thread
//     does not hold throws std::system_error(std::errc::operation_not_permitted).
//
// It meets the SharedTimedMutex requirements, so std::unique_lock,
// std::shared_lock, std::scoped_lock and std::condition_variable_any work with it.
//
// What it does not do:
//   * no upgrade: a reader never becomes the writer (that would deadlock two
//     readers that both try), it must release and then ask for the write lock;
//   * no strict first-come first-served order (see above), and readers wait
//     while writers do, so under a steady stream of writers a reader gets in
//     only on its fair turn;
//   * it is not for processes (see interprocess_reader_writer_lock);
//   * a lock must outlive every thread's hold on it; a thread that exits while
//     holding it leaves it held forever, as with any mutex.
//
// Cost: a read lock and unlock is one atomic read-modify-write each, on the
// lock itself while a thread reads alone, and on a cache line that belongs to
// the calling thread as soon as readers overlap, so readers on different
// cores do not slow each other down. A writer pays for that: taking the write
// lock after overlapping readers have been active scans a small process-wide
// table (16 to 256 cache lines, by core count). Waiters spin for a
// microsecond at most (a writer behind a writer not at all), then sleep until
// woken (a futex on Linux); a release wakes one writer, or the readers, never
// everyone, and none while a woken writer has yet to look; nobody polls. The object itself
// is 16 bytes. Each thread keeps its read holds in a small thread_local table:
// eight locks inline, more on the heap (so the ninth concurrent read lock of
// one thread may throw std::bad_alloc).
#pragma once

#include <fasteners/detail/deadline.hpp>
#include <fasteners/guards.hpp>
#include <fasteners/thread_annotations.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <type_traits>

namespace fasteners {

class reader_writer_lock;
namespace detail {
// How many writers wait in the lock's queue now; for tests.
std::size_t queued_writers(const reader_writer_lock& lock);
}  // namespace detail

class FASTENERS_CAPABILITY("mutex") reader_writer_lock {
 public:
  // What holds the lock at one moment (see owner()).
  enum class owner_kind { none, readers, writer };

  reader_writer_lock() = default;
  // Destroying a lock that some thread holds is undefined, as for std::shared_mutex.
  ~reader_writer_lock() = default;
  reader_writer_lock(const reader_writer_lock&) = delete;
  reader_writer_lock& operator=(const reader_writer_lock&) = delete;

  // --- The write (exclusive) side ---------------------------------------

  // Waits until the calling thread is the only holder. Returns at once if it
  // already is the writer. Throws std::system_error
  // (resource_deadlock_would_occur) if the calling thread holds a read lock
  // and not the write lock: it would wait for itself forever.
  void lock() FASTENERS_ACQUIRE();
  // One attempt, never waits; false if anyone else holds the lock, if writers
  // wait for it, or if the calling thread is a reader.
  bool try_lock() FASTENERS_TRY_ACQUIRE(true);
  // Waits at most `timeout` (a zero or negative timeout is one attempt). A
  // reader asking to wait throws, as lock() does.
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) FASTENERS_TRY_ACQUIRE(true) {
    return try_lock_until_steady(detail::steady_deadline_after(timeout));
  }
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) FASTENERS_TRY_ACQUIRE(true) {
    return detail::attempt_until(
        deadline, [this](std::chrono::steady_clock::time_point steady) { return try_lock_until_steady(steady); });
  }
  // Undoes one lock(). Throws std::system_error (operation_not_permitted) if
  // the calling thread is not the writer.
  void unlock() FASTENERS_RELEASE();
  // Turns the calling thread's write lock into a read lock in one atomic
  // step: no other writer can get in between (readers waiting may join at
  // once). Throws std::system_error (operation_not_permitted) if the calling
  // thread is not the writer. If it took the write lock more than once, this
  // undoes one lock() and adds one read hold, as lock_shared() then unlock()
  // would.
  void unlock_and_lock_shared() FASTENERS_RELEASE() FASTENERS_ACQUIRE_SHARED();

  // --- The read (shared) side -------------------------------------------

  // Waits while a writer holds the lock or writers are queued, unless the
  // calling thread already reads (or writes), in which case it returns at once.
  void lock_shared() FASTENERS_ACQUIRE_SHARED();
  bool try_lock_shared() FASTENERS_TRY_ACQUIRE_SHARED(true);
  template <class Rep, class Period>
  bool try_lock_shared_for(const std::chrono::duration<Rep, Period>& timeout) FASTENERS_TRY_ACQUIRE_SHARED(true) {
    return try_lock_shared_until_steady(detail::steady_deadline_after(timeout));
  }
  template <class Clock, class Duration>
  bool try_lock_shared_until(const std::chrono::time_point<Clock, Duration>& deadline)
      FASTENERS_TRY_ACQUIRE_SHARED(true) {
    return detail::attempt_until(deadline, [this](std::chrono::steady_clock::time_point steady) {
      return try_lock_shared_until_steady(steady);
    });
  }
  // Undoes one lock_shared(). Throws std::system_error
  // (operation_not_permitted) if the calling thread holds no read lock.
  void unlock_shared() FASTENERS_RELEASE_SHARED();

  // --- Guards -----------------------------------------------------------

  // `auto r = lock.read_lock();` reads until r is destroyed (or r.unlock()).
  [[nodiscard]] std::shared_lock<reader_writer_lock> read_lock() FASTENERS_NO_THREAD_SAFETY_ANALYSIS {
    return std::shared_lock<reader_writer_lock>(*this);
  }
  // `auto w = lock.write_lock();` writes until w is destroyed (or w.unlock()).
  [[nodiscard]] std::unique_lock<reader_writer_lock> write_lock() FASTENERS_NO_THREAD_SAFETY_ANALYSIS {
    return std::unique_lock<reader_writer_lock>(*this);
  }

  // --- Questions --------------------------------------------------------

  // True if the calling thread holds a read lock (including one the writer took).
  bool is_reader() const noexcept;
  // True if the calling thread holds the write lock. check_pending is kept
  // from Python fasteners, where it also counts a thread queued for the write
  // lock; a C++ thread that waits for it is blocked inside lock(), so it can
  // never ask, and the answer is the same either way.
  bool is_writer(bool check_pending = true) const noexcept;
  // True if some thread waits for the write lock. A snapshot: it may be stale
  // by the time the caller looks at it.
  bool has_pending_writers() const noexcept;
  // What holds the lock now: nobody, one or more readers, or a writer. A snapshot.
  owner_kind owner() const noexcept;

 private:
  // Not annotated: the public members that call them carry the annotations.
  bool try_lock_until_steady(std::chrono::steady_clock::time_point deadline);
  bool try_lock_shared_until_steady(std::chrono::steady_clock::time_point deadline);
  bool lock_exclusive(std::chrono::steady_clock::time_point deadline, bool wait);
  bool lock_exclusive_slow(std::chrono::steady_clock::time_point deadline);
  bool finish_claim(std::uint32_t claimed_from, std::chrono::steady_clock::time_point deadline);
  bool drain_readers(std::chrono::steady_clock::time_point deadline);
  void abandon_claim() noexcept;
  void release_write(std::uint32_t readers, bool may_hand_over) noexcept;
  void settle_waiters(bool woken) noexcept;
  bool lock_shared_impl(std::chrono::steady_clock::time_point deadline, bool wait);
  void lock_shared_not_alone(std::uint32_t state);
  std::int32_t enter_shared() noexcept;
  std::int32_t lock_shared_slow(std::chrono::steady_clock::time_point deadline);
  void move_slot_readers_to_count() noexcept;
  bool any_slot_reader() const noexcept;
  void release_counted_reader() noexcept;
  void unlock_shared_spilled();

  // Bits of state_, described in reader_writer_lock.cpp.
  std::atomic<std::uint32_t> state_{0};
  // How often the writer has taken the write lock; only the writer touches it.
  std::uint32_t write_depth_ = 0;
  // The thread that holds the write lock (an address unique to it), or null.
  std::atomic<const void*> writer_{nullptr};
};

}  // namespace fasteners
