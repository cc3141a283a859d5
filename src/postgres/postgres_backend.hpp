// The PostgreSQL back end: one session carrying one advisory lock (shared or
// exclusive) for the resource record of one name in one database.
//
// Lock order: the record's mutex (held by the record around tries, unlock and
// downgrade), then postgres_backend::session_mutex_, then the watcher's mutex.
// The watcher only ever try-locks session_mutex_, so it never waits for a
// back end that waits for it.
#pragma once

// First: the public header's templates name parameters `deadline`, which
// would shadow detail::deadline declared after them.
#include <fasteners/postgres_lock.hpp>
#include <fasteners/thread_annotations.hpp>

#include "lock_backend.hpp"
#include "resource_record.hpp"
#include "session.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace fasteners::detail {

// A lock name as the server sees it.
struct advisory_key {
  advisory_key(std::string_view name, postgres_key_scheme scheme);
  postgres_key_scheme scheme;
  std::int64_t big = 0;                // hash64
  std::int32_t first = 0, second = 0;  // tooz
  // The SQL arguments of pg_advisory_lock(...), as literals.
  std::string sql_arguments() const;
  // The same key as pg_locks shows it: "classid = ... AND objid = ... AND objsubid = ...".
  std::string pg_locks_condition() const;
  std::string record_suffix() const;
};

// What a lock object hears about its holds. Called with no lock of the back
// end held.
class lost_listener {
 public:
  virtual ~lost_listener() = default;
  // The hold `serial` is gone: at once, on the thread that found out.
  virtual void mark_lost(std::uint64_t serial) noexcept = 0;
  // Then, on the watcher's thread: run the user's callback.
  virtual void run_on_lost(std::uint64_t serial) noexcept = 0;
};

class postgres_backend final : public lock_backend {
 public:
  postgres_backend(std::string lock_name, advisory_key key, session_params params, std::unique_ptr<pg_session> session);
  ~postgres_backend() override;

  bool lock(lock_kind kind, deadline until) override;
  void unlock() override;
  void downgrade() override;
  bool waits_until() const noexcept override { return true; }
  void forget_after_fork() noexcept override;
  void absorb_duplicate(lock_backend* other) noexcept override;
  std::string describe() const override;

  // For the lock objects.
  void add_listener(std::weak_ptr<lost_listener> listener);
  void want_fencing_tokens() noexcept { fencing_.store(true); }
  // The serial number of the current (or latest) process-level hold.
  std::uint64_t hold_serial() const noexcept { return serial_.load(); }
  std::int64_t fencing_token() const noexcept { return token_.load(); }
  // Asks the server whether hold `serial` stands; false: it is lost (and
  // reported so).
  bool verify(std::uint64_t serial);

  // For the watcher: one non-blocking look at the session. False: lost.
  // Called with the watcher's mutex held; skips (true) if the session is busy.
  bool check_liveness() noexcept;
  std::chrono::milliseconds liveness() const noexcept { return params_.liveness; }
  int watched_socket() const noexcept { return socket_.load(); }
  // Marks the current hold lost and tells the listeners (their callbacks run
  // on the watcher's thread).
  void report_lost() noexcept;
  // The watcher's half of it: marks, and returns whom to call back.
  std::vector<std::shared_ptr<lost_listener>> mark_hold_lost() noexcept;

  // Sessions kept for reuse: by conninfo, liveness, key scheme and name.
  static std::string pool_key(const session_params& params, const advisory_key& key);
  static std::unique_ptr<pg_session> take_pooled(const std::string& key);
  static void give_to_pool(const std::string& key, std::unique_ptr<pg_session> session) noexcept;

 private:
  bool try_once(lock_kind kind, deadline bound) FASTENERS_REQUIRES(session_mutex_);
  bool wait(lock_kind kind, deadline until) FASTENERS_REQUIRES(session_mutex_);
  void settle_cancelled_wait(lock_kind kind) noexcept FASTENERS_REQUIRES(session_mutex_);
  void unlock_quietly(lock_kind kind) noexcept FASTENERS_REQUIRES(session_mutex_);
  std::int64_t draw_token() FASTENERS_REQUIRES(session_mutex_);
  void ensure_session() FASTENERS_REQUIRES(session_mutex_);
  void drop_session() noexcept FASTENERS_REQUIRES(session_mutex_);
  deadline answer_bound() const;
  [[noreturn]] void throw_failure(const pg_failure& failure, const char* doing) const;

  const std::string name_;
  const advisory_key key_;
  const session_params params_;
  const std::string pool_key_;
  std::string try_sql_[2], wait_sql_[2], unlock_sql_[2];  // [shared, exclusive]

  annotated_mutex session_mutex_;
  std::unique_ptr<pg_session> session_ FASTENERS_GUARDED_BY(session_mutex_);
  bool held_ FASTENERS_GUARDED_BY(session_mutex_) = false;
  lock_kind held_kind_ FASTENERS_GUARDED_BY(session_mutex_) = lock_kind::exclusive;
  std::atomic<int> socket_{-1};

  std::atomic<bool> fencing_{false};
  std::atomic<std::uint64_t> serial_{0};
  std::atomic<std::uint64_t> lost_serial_{0};
  std::atomic<std::int64_t> token_{0};

  std::mutex listeners_mutex_;
  std::vector<std::weak_ptr<lost_listener>> listeners_;
};

// The process's one watcher thread (started on first use; a fork child starts
// its own): heartbeats every held session, notices a dead one within its
// liveness, and runs the lost callbacks.
namespace liveness_watcher {
void watch(postgres_backend* backend);
// When this returns, the watcher no longer looks at `backend`.
void unwatch(postgres_backend* backend) noexcept;
// Runs the listeners' run_on_lost(serial) on the watcher's thread.
void post_lost(std::vector<std::shared_ptr<lost_listener>> listeners, std::uint64_t serial) noexcept;
}  // namespace liveness_watcher

}  // namespace fasteners::detail
