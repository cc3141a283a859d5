// The middle layer: one record per locked resource per process (a file's
// device and inode, a server and an advisory-lock key), shared by every lock
// object on that resource.
//
// The record is the only in-process arbiter. It owns the back end, knows
// which thread holds what through which object, queues the threads that wait
// (first come, first served; a running thread may still take a free lock
// before the woken head of the queue gets to it, but at least every 0.5 ms a
// release hands it to the head directly, so nobody waits for ever behind
// threads that keep coming back), detects self-deadlock, and takes the
// process-level lock on the first hold and gives it back on the last. No hold
// is recorded anywhere else: not per object, not per thread.
//
// Lock order: resource_record::mutex_, then record_table::mutex_ (a record
// pins itself for a helper thread), then the helper-thread pool's mutex.
// Nothing takes a record's mutex with the table's held: records are made,
// absorbed into and destroyed under the table's mutex without their own. A
// back end's blocking lock() is called with none of them held; its tries,
// unlock() and downgrade() with the record's mutex held. Nothing is called
// back up from a back end.
//
// Fork: one pthread_atfork handler (record_table) takes the table's mutex
// around fork(); in the child it lets every inherited back end go
// (lock_backend::forget_after_fork) and starts an empty table. The parent's
// records are never touched again in the child: their mutexes may have been
// held by parent threads that do not exist there. Lock objects notice from
// record_handle::generation() that their record is the parent's.
#pragma once

#include "lock_backend.hpp"

#include <fasteners/thread_annotations.hpp>

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace fasteners::detail {

// std::mutex with clang thread-safety annotations, and the guard that the
// record's code uses with it (waiting on condition variables included).
class FASTENERS_CAPABILITY("mutex") annotated_mutex {
 public:
  void lock() FASTENERS_ACQUIRE() { m_.lock(); }
  void unlock() FASTENERS_RELEASE() { m_.unlock(); }
  std::mutex& native() noexcept { return m_; }

 private:
  std::mutex m_;
};

class FASTENERS_SCOPED_CAPABILITY record_guard {
 public:
  explicit record_guard(annotated_mutex& m) FASTENERS_ACQUIRE(m) : lock_(m.native()) {}
  ~record_guard() FASTENERS_RELEASE() = default;
  record_guard(const record_guard&) = delete;
  record_guard& operator=(const record_guard&) = delete;
  void unlock() FASTENERS_RELEASE() { lock_.unlock(); }
  void lock() FASTENERS_ACQUIRE() { lock_.lock(); }
  void wait(std::condition_variable& cv) { cv.wait(lock_); }
  // False on timeout.
  // A deadline already past returns at once: some libraries' wait_until
  // overflows converting time_point::min() to another clock, and waits for
  // ever (mingw-w64's libstdc++).
  bool wait_until(std::condition_variable& cv, deadline until) {
    if (until <= std::chrono::steady_clock::now()) return false;
    return cv.wait_until(lock_, until) == std::cv_status::no_timeout;
  }

 private:
  std::unique_lock<std::mutex> lock_;
};

// Counts forks: a child sees a different value than its parent had. Always 0
// where there is no fork().
unsigned process_generation() noexcept;

class resource_record {
 public:
  resource_record(std::string key, std::unique_ptr<lock_backend> backend);
  ~resource_record();
  resource_record(const resource_record&) = delete;
  resource_record& operator=(const resource_record&) = delete;

  // Takes `kind` for the calling thread through `object` (any value that
  // names the lock object; it is compared, never dereferenced). `until` as in
  // lock_backend::lock. A shared hold of a thread that already reads joins at
  // once, past any queue. A thread that would wait for its own hold gets
  // std::system_error(resource_deadlock_would_occur); a try answers false.
  bool acquire(const void* object, lock_kind kind, deadline until) FASTENERS_EXCLUDES(mutex_);
  // Throws operation_not_permitted unless the calling thread holds `kind`
  // through `object`.
  void release(const void* object, lock_kind kind) FASTENERS_EXCLUDES(mutex_);
  // The calling thread's exclusive hold through `object` becomes shared,
  // atomically with respect to every other thread and process.
  void downgrade(const void* object) FASTENERS_EXCLUDES(mutex_);
  // A lock object goes away: every hold taken through it (by any thread) is
  // dropped, and the process-level lock released if that was the last.
  void forget_object(const void* object) noexcept FASTENERS_EXCLUDES(mutex_);

  // Whether the calling thread holds `kind` through `object`.
  bool holds(const void* object, lock_kind kind) FASTENERS_EXCLUDES(mutex_);
  // Whether the calling thread holds anything through `object`.
  bool holds_any(const void* object) FASTENERS_EXCLUDES(mutex_);

  lock_backend& backend() noexcept { return *backend_; }
  const std::string& key() const noexcept { return key_; }
  unsigned generation() const noexcept { return generation_; }

 private:
  friend class record_table;
  struct hold {
    std::thread::id thread;
    const void* object;
    lock_kind kind;
    unsigned count;
  };
  // A thread waiting in the queue; lives on that thread's stack.
  struct waiter {
    lock_kind kind;
    std::condition_variable wake;
    bool granted = false;  // handed the lock directly by a release (eventual fairness)
  };
  // A wait for the process-level lock that runs on a helper thread, for back
  // ends that cannot wait with a deadline. It outlives the thread that asked
  // for it if that thread gives up; the next waiter of the same kind adopts
  // it, or its lock is given back when it comes in unwanted.
  struct helper_wait;

  enum class process_mode { none, shared, exclusive };

  hold* find(std::thread::id thread, const void* object, lock_kind kind) FASTENERS_REQUIRES(mutex_);
  bool head_may_proceed(const waiter& w) FASTENERS_REQUIRES(mutex_);
  bool take_process_lock(record_guard& guard, waiter* w, lock_kind kind, deadline until, bool try_first)
      FASTENERS_REQUIRES(mutex_);
  bool wait_on_helper(record_guard& guard, waiter* w, lock_kind kind, deadline until) FASTENERS_REQUIRES(mutex_);
  void on_helper_done(bool acquired, std::exception_ptr error) FASTENERS_EXCLUDES(mutex_);
  void add_hold(const void* object, lock_kind kind) FASTENERS_REQUIRES(mutex_);
  void release_process_lock_if_unused() FASTENERS_REQUIRES(mutex_);
  void leave_queue(waiter* w) FASTENERS_REQUIRES(mutex_);
  void wake_head() FASTENERS_REQUIRES(mutex_);
  [[noreturn]] void throw_errc(std::errc code, const char* what) const;

  const std::string key_;
  const std::unique_ptr<lock_backend> backend_;
  const unsigned generation_ = process_generation();

  annotated_mutex mutex_;
  std::vector<hold> holds_ FASTENERS_GUARDED_BY(mutex_);  // either all shared or one exclusive
  process_mode mode_ FASTENERS_GUARDED_BY(mutex_) = process_mode::none;
  std::vector<waiter*> queue_ FASTENERS_GUARDED_BY(mutex_);  // FIFO; only the head acts
  // A thread (the head, or a helper for it) is inside backend_->lock()
  // without the mutex.
  bool backend_busy_ FASTENERS_GUARDED_BY(mutex_) = false;
  std::shared_ptr<helper_wait> helper_ FASTENERS_GUARDED_BY(mutex_);
  // The process-level lock is kept for a queue head it was handed to, which
  // has not woken up yet; nobody else may take it.
  bool reserved_ FASTENERS_GUARDED_BY(mutex_) = false;
  // When a release next hands the lock to the head of the queue instead of
  // letting whoever runs first take it (parking_lot's "eventual fairness").
  deadline next_fair_handoff_ FASTENERS_GUARDED_BY(mutex_) = deadline::min();

  bool hand_to_head() FASTENERS_REQUIRES(mutex_);
  bool readers_may_pass_helper() FASTENERS_REQUIRES(mutex_);

  // Owned by record_table (its mutex).
  std::size_t users_ = 0;
};

// A counted reference to a record. Resolving and dropping the last reference
// go through the table's mutex, so no record is created or destroyed while a
// fork copies the table, and two threads never make two records for one
// resource.
class record_handle {
 public:
  record_handle() = default;
  explicit record_handle(resource_record* r) noexcept : record_(r) {}
  ~record_handle();
  record_handle(record_handle&& other) noexcept : record_(other.record_) { other.record_ = nullptr; }
  record_handle& operator=(record_handle&& other) noexcept;
  record_handle(const record_handle&) = delete;
  record_handle& operator=(const record_handle&) = delete;

  resource_record* get() const noexcept { return record_; }
  resource_record* operator->() const noexcept { return record_; }
  explicit operator bool() const noexcept { return record_ != nullptr; }
  // Forgets the record without dropping the reference: for a record that a
  // fork child inherited (it must not be touched there).
  void leak() noexcept { record_ = nullptr; }
  record_handle copy() const;

 private:
  resource_record* record_ = nullptr;
};

// Finds or makes the record of a resource. Under the table's mutex (so that a
// fork never copies a half-made record and two threads never make two):
// `peek` (may be empty) names the key without opening anything, if it can (a
// file's device and inode from stat); if that record exists it is used.
// Otherwise `make` opens the back end and sets its key; if a record for that
// key exists after all, the new back end goes to its absorb_duplicate().
// `make` may throw. Keep slow work (connecting to a server) out of `make`:
// do it first, and let `make` hand over what it made.
record_handle open_record(const std::function<std::optional<std::string>()>& peek,
                          const std::function<std::unique_ptr<lock_backend>(std::string& key)>& make);

}  // namespace fasteners::detail
