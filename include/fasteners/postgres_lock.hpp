// Locks across machines, on PostgreSQL advisory locks (component
// fasteners::postgres; links libpq, which the core library does not).
//
// The same promises as the inter-process locks, where they apply:
//   * thread-safe: one object shared by threads behaves like std::timed_mutex
//     (or std::shared_timed_mutex), and two objects on one name and one
//     database exclude each other inside one process, however their conninfo
//     strings are spelled (the server is known by its system identifier and
//     the database), although advisory locks are re-entrant per session;
//   * a thread that would wait for a lock it holds itself gets
//     std::system_error(resource_deadlock_would_occur); try_lock() says false;
//     unlocking what the calling thread does not hold throws
//     operation_not_permitted;
//   * waits happen in the server (FIFO, with deadlock detection); a timed wait
//     is one round trip under the server's lock_timeout, never a poll, and
//     always tries once;
//   * only "somebody holds it" is false; everything else (cannot connect,
//     authentication, the server gone while waiting, a deadlock found by the
//     server) throws std::system_error naming the lock, with libpq's message;
//   * a fork child never releases its parent's lock.
//
// Unlike a lock file, a lock held on a server can be lost while the holder
// runs: the server restarts or fails over, an administrator terminates the
// session, the network partitions. A watcher notices within `liveness`: then
// lost() is true, the on_lost() callback runs once (on the watcher's thread),
// and ensure_held() throws lock_lost. The session also tells the server to
// drop a silent client's locks only after the client has given up on them.
//
// What they do not do: survive a server restart or a failover (the holder is
// told); work through a transaction-pooling proxy (PgBouncer in transaction
// mode breaks session locks; detected when pg_advisory_unlock answers false);
// exclude holders in another database of the same server.
#pragma once

#include <fasteners/detail/deadline.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace fasteners {

// How a lock name becomes an advisory-lock key.
enum class postgres_key_scheme {
  // One bigint: the first 8 bytes of MD5(name) read big-endian as a signed
  // 64-bit number. In SQL: ('x' || left(md5(name), 16))::bit(64)::bigint.
  hash64,
  // The two int4 keys md5(name)[0], md5(name)[1] (0..255 each) that OpenStack
  // tooz's PostgreSQL driver takes: C++ and Python tooz exclude each other.
  // Only 65,536 keys: names collide easily. Exclusive locks only in tooz.
  tooz,
};

struct postgres_options {
  // Any libpq connection string or URI; empty: libpq's defaults and the PG*
  // environment variables. Unless it says otherwise the library adds
  // connect_timeout=10, TCP keepalives and tcp_user_timeout derived from
  // `liveness`, and an application_name naming the program and the lock.
  std::string conninfo;
  postgres_key_scheme key_scheme = postgres_key_scheme::hash64;
  // How soon a holder learns that its session is gone (heartbeat period and
  // timeout); the server is told to keep a silent client's locks for about
  // three times as long.
  std::chrono::milliseconds liveness{3000};
  // Draw a fencing token from a sequence on every exclusive acquisition.
  bool fencing_tokens = false;
};

// Thrown by ensure_held() when the session that held the lock is gone (or the
// server no longer shows the lock). Error code: std::errc::connection_reset.
class lock_lost : public std::system_error {
 public:
  using std::system_error::system_error;
};

// The keys, for other clients that want to take the same locks.
std::int64_t postgres_hash64_key(std::string_view name) noexcept;
std::pair<std::int32_t, std::int32_t> postgres_tooz_keys(std::string_view name) noexcept;

namespace detail {
class postgres_lock_state;
}  // namespace detail

// An exclusive lock named `name` in the database that `options.conninfo`
// reaches. Meets TimedLockable. Nothing is connected until the first lock.
class postgres_lock {
 public:
  explicit postgres_lock(std::string name, postgres_options options = {});
  // Releases what this object holds (a lost hold is dropped silently).
  ~postgres_lock();
  postgres_lock(const postgres_lock&) = delete;
  postgres_lock& operator=(const postgres_lock&) = delete;

  // Waits in the server until the lock is ours.
  void lock();
  // One attempt (a round trip); false if somebody holds it.
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
  // Throws operation_not_permitted if the calling thread does not hold it;
  // never throws because the hold was lost.
  void unlock();

  // True if the calling thread holds the lock through this object (as far as
  // this process knows: see lost()).
  bool owns_lock() const;
  const std::string& name() const noexcept;
  // True once the session that carried this object's latest hold is gone;
  // false again after the next successful acquisition.
  bool lost() const noexcept;
  // Asks the server whether the calling thread's hold still stands: throws
  // lock_lost if not, operation_not_permitted if the calling thread holds
  // nothing through this object.
  void ensure_held();
  // The fencing token of the current exclusive hold (> 0), or 0 when nothing
  // is held or fencing_tokens is off.
  std::int64_t fencing_token() const;
  // Runs `callback` once per lost hold, on the watcher's thread. Keep it short
  // and do not destroy this object from it.
  void on_lost(std::function<void()> callback);

 private:
  bool try_lock_until_steady(std::chrono::steady_clock::time_point deadline);
  std::shared_ptr<detail::postgres_lock_state> state_;
};

// A reader-writer lock named `name`: many readers or one writer, across
// machines. Meets SharedTimedLockable. Between sessions the server decides
// who goes next: its wait queue is FIFO, so a waiting writer holds back new
// readers.
class postgres_reader_writer_lock {
 public:
  explicit postgres_reader_writer_lock(std::string name, postgres_options options = {});
  ~postgres_reader_writer_lock();
  postgres_reader_writer_lock(const postgres_reader_writer_lock&) = delete;
  postgres_reader_writer_lock& operator=(const postgres_reader_writer_lock&) = delete;

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

  [[nodiscard]] std::shared_lock<postgres_reader_writer_lock> read_lock() {
    return std::shared_lock<postgres_reader_writer_lock>(*this);
  }
  [[nodiscard]] std::unique_lock<postgres_reader_writer_lock> write_lock() {
    return std::unique_lock<postgres_reader_writer_lock>(*this);
  }

  // What the calling thread holds through this object.
  bool is_reader() const;
  bool is_writer() const;
  const std::string& name() const noexcept;
  bool lost() const noexcept;
  void ensure_held();
  std::int64_t fencing_token() const;
  void on_lost(std::function<void()> callback);

 private:
  bool try_lock_until_steady(std::chrono::steady_clock::time_point deadline);
  bool try_lock_shared_until_steady(std::chrono::steady_clock::time_point deadline);
  std::shared_ptr<detail::postgres_lock_state> state_;
};

}  // namespace fasteners
