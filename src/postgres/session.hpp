// One libpq connection, driven without blocking calls: every wait is a
// poll(2) on PQsocket with a deadline, so that a wait can be bounded, and cut
// short by pthread_cancel (poll is a cancellation point) or PQcancel.
// Not thread-safe: its owner (postgres_backend) serialises every use.
#pragma once

#include "lock_backend.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

namespace fasteners::detail {

struct pg_result_deleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using pg_result = std::unique_ptr<PGresult, pg_result_deleter>;

// A failure talking to the server, before it is given the lock's name.
class pg_failure : public std::runtime_error {
 public:
  pg_failure(std::errc code, const std::string& message, std::string sqlstate = {}, bool connection_gone = false)
      : std::runtime_error(message), code_(code), sqlstate_(std::move(sqlstate)), connection_gone_(connection_gone) {}
  std::errc code() const noexcept { return code_; }
  const std::string& sqlstate() const noexcept { return sqlstate_; }
  // The session is unusable: the server went away, or stopped answering.
  bool connection_gone() const noexcept { return connection_gone_; }

 private:
  std::errc code_;
  std::string sqlstate_;
  bool connection_gone_;
};

struct session_params {
  std::string conninfo;
  // Used unless the conninfo (or PGAPPNAME) names one.
  std::string application_name;
  std::chrono::milliseconds liveness{3000};
};

class pg_session {
 public:
  // Connects within the conninfo's connect_timeout (10 s unless it says),
  // sets the session's server-side timeouts and learns who the server is.
  // Throws pg_failure.
  static std::unique_ptr<pg_session> connect(const session_params& params);
  ~pg_session();
  pg_session(const pg_session&) = delete;
  pg_session& operator=(const pg_session&) = delete;

  // Still connected, as far as the client knows.
  bool usable() const noexcept;
  // What the server says it is: its system identifier and the database.
  const std::string& server_identity() const noexcept { return identity_; }
  int backend_pid() const noexcept { return backend_pid_; }
  int socket() const noexcept;
  std::chrono::milliseconds liveness() const noexcept { return liveness_; }

  // Runs `sql` (several statements allowed) and returns the last result, or
  // throws pg_failure for the first error. `until` bounds the client's wait
  // (no_deadline: for ever); past it the session is closed and pg_failure
  // (timed_out, connection_gone) thrown.
  pg_result exec(const std::string& sql, deadline until);
  // One statement with text parameters, prepared under `name` on first use.
  pg_result exec_prepared(const char* name, const char* sql, int n_params, const char* const* values, deadline until);
  // Sends one statement with text parameters without waiting for it; then
  // await_result().
  void send_params(const char* sql, int n_params, const char* const* values);
  void send_prepared(const char* name, const char* sql, int n_params, const char* const* values, deadline until);
  pg_result await_result(deadline until);

  // Asks the server to cancel what runs now; the result still comes.
  void cancel() noexcept;

  // The watcher's heartbeat: an empty query, answered at once by a live
  // server. send_heartbeat() and poll_input() never block; false means the
  // connection is gone.
  bool send_heartbeat() noexcept;
  bool heartbeat_outstanding() const noexcept { return heartbeat_outstanding_; }
  std::chrono::steady_clock::time_point heartbeat_sent() const noexcept { return heartbeat_sent_; }
  std::chrono::steady_clock::time_point last_answer() const noexcept { return last_answer_; }
  // Reads what has arrived; finishes the heartbeat if its answer is in.
  bool poll_input() noexcept;
  // Before any other use: waits (until `until`) for the heartbeat's answer.
  // False if the connection is gone or the answer did not come in time.
  bool finish_heartbeat(deadline until) noexcept;

  // Makes sure the next exec does not prepare again, and names the lock in
  // pg_stat_activity. For a session reused for another lock.
  void set_application_name(const std::string& name, deadline until);

  // Marks the session unusable and closes it (without waiting).
  void close() noexcept;
  // In a fork child: close the inherited socket without telling the server
  // anything; the PGconn is leaked, never freed (PQfinish would send
  // Terminate on the parent's session).
  void forget_after_fork() noexcept;

 private:
  explicit pg_session(PGconn* conn, std::chrono::milliseconds liveness);
  void flush(deadline until);
  // Waits until the socket is readable (or writable with `write`); false at
  // `until`. A cancellation point.
  bool wait_socket(bool write, deadline until);
  void setup(const session_params& params);
  [[noreturn]] void fail_connection(std::errc code, const std::string& what);
  bool prepared(const char* name) const;
  void unregister_socket() noexcept;

  PGconn* conn_;
  int registered_socket_ = -1;  // as registered for fork children (session_registry.hpp)
  std::chrono::milliseconds liveness_;
  std::string identity_;
  int backend_pid_ = 0;
  bool broken_ = false;
  bool heartbeat_outstanding_ = false;
  std::chrono::steady_clock::time_point heartbeat_sent_{};
  std::chrono::steady_clock::time_point last_answer_{};
  std::string prepared_;  // names of the prepared statements, ';'-separated
};

// The libpq message, trimmed of its trailing newline.
std::string pq_message(const PGconn* conn);

}  // namespace fasteners::detail
