#include "session.hpp"

#include "session_registry.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace fasteners::detail {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

long long ceil_seconds(milliseconds ms) { return std::max<long long>(1, (ms.count() + 999) / 1000); }

std::string sqlstate_of(const PGresult* r) {
  const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return s != nullptr ? s : "";
}

std::string trimmed(const char* message) {
  std::string s = message != nullptr ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::errc errc_of_sqlstate(const std::string& state) {
  if (state == "40P01") return std::errc::resource_deadlock_would_occur;
  if (state.compare(0, 2, "28") == 0 || state == "42501") return std::errc::permission_denied;
  if (state.compare(0, 2, "08") == 0 || state.compare(0, 3, "57P") == 0) return std::errc::connection_reset;
  if (state == "57014") return std::errc::operation_canceled;
  return std::errc::io_error;
}

// Connection failures carry no SQLSTATE in libpq's API: read the message.
std::errc errc_of_connect_failure(const std::string& message) {
  if (message.find("authentication") != std::string::npos || message.find("pg_hba.conf") != std::string::npos ||
      message.find("password") != std::string::npos ||
      (message.find("role \"") != std::string::npos && message.find("does not exist") != std::string::npos)) {
    return std::errc::permission_denied;  // a role that does not exist is refused authorization (28000)
  }
  if (message.find("timeout") != std::string::npos) return std::errc::timed_out;
  return std::errc::connection_refused;
}

int poll_timeout_ms(deadline until) {
  if (until == no_deadline) return -1;
  const auto left = until - steady_clock::now();
  if (left <= left.zero()) return 0;
  const auto ms = std::chrono::ceil<milliseconds>(left).count();
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

}  // namespace

std::string pq_message(const PGconn* conn) { return trimmed(PQerrorMessage(conn)); }

pg_session::pg_session(PGconn* conn, milliseconds liveness) : conn_(conn), liveness_(liveness) {}

pg_session::~pg_session() {
  if (conn_ == nullptr) return;
  unregister_socket();
  PQfinish(conn_);
}

// By the number registered: once libpq drops a broken connection it has
// closed the socket itself, and PQsocket() answers -1.
void pg_session::unregister_socket() noexcept {
  if (registered_socket_ < 0) return;
  unregister_session_socket(registered_socket_);
  registered_socket_ = -1;
}

std::unique_ptr<pg_session> pg_session::connect(const session_params& params) {
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(params.conninfo.c_str(), &parse_error);
  if (parsed == nullptr) {
    std::string message = parse_error != nullptr ? trimmed(parse_error) : "out of memory";
    PQfreemem(parse_error);
    throw pg_failure(std::errc::invalid_argument, "invalid connection string: " + message);
  }
  std::vector<std::string> keys, values;
  for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    keys.emplace_back(o->keyword);
    values.emplace_back(o->val);
  }
  PQconninfoFree(parsed);
  auto given = [&](const char* key) {
    for (const auto& k : keys) {
      if (k == key) return true;
    }
    return false;
  };
  auto value_of = [&](const char* key) -> std::string {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return values[i];
    }
    const char* env = std::getenv("PGCONNECT_TIMEOUT");
    return std::string(key) == "connect_timeout" && env != nullptr ? env : "";
  };
  auto add_default = [&](const char* key, std::string value) {
    if (given(key)) return;
    keys.emplace_back(key);
    values.push_back(std::move(value));
  };
  // The client gives up on a silent server after `liveness`: keepalives when
  // idle, tcp_user_timeout when our data goes unacknowledged.
  add_default("connect_timeout", value_of("connect_timeout").empty() ? "10" : value_of("connect_timeout"));
  add_default("keepalives", "1");
  add_default("keepalives_idle", std::to_string(ceil_seconds(params.liveness)));
  add_default("keepalives_interval", "1");
  add_default("keepalives_count", "3");
  add_default("tcp_user_timeout", std::to_string(params.liveness.count()));
  add_default("fallback_application_name", params.application_name);

  long long connect_timeout = std::atoll(value_of("connect_timeout").c_str());
  if (value_of("connect_timeout").empty()) connect_timeout = 10;
  // libpq: 0 or less waits for ever; 1 is taken as 2.
  const deadline until =
      connect_timeout <= 0 ? no_deadline : steady_clock::now() + std::chrono::seconds(std::max(2LL, connect_timeout));

  std::vector<const char*> key_ptrs, value_ptrs;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    key_ptrs.push_back(keys[i].c_str());
    value_ptrs.push_back(values[i].c_str());
  }
  key_ptrs.push_back(nullptr);
  value_ptrs.push_back(nullptr);
  PGconn* conn = PQconnectStartParams(key_ptrs.data(), value_ptrs.data(), 0);
  if (conn == nullptr) throw pg_failure(std::errc::not_enough_memory, "cannot allocate a connection");
  // libpq prints notices, and an error the server sends an idle session
  // ("FATAL: terminating connection due to administrator command"), on the
  // application's stderr. The library does not write there: what matters
  // reaches the user as an exception or as lost().
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  std::unique_ptr<pg_session> session(new pg_session(conn, params.liveness));
  if (PQstatus(conn) == CONNECTION_BAD) session->fail_connection(std::errc::connection_refused, "cannot connect: ");
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  for (;;) {
    if (state == PGRES_POLLING_OK) break;
    if (state == PGRES_POLLING_FAILED) {
      session->fail_connection(errc_of_connect_failure(pq_message(conn)), "cannot connect: ");
    }
    if (!session->wait_socket(state == PGRES_POLLING_WRITING, until)) {
      session->fail_connection(std::errc::timed_out, "cannot connect: no answer within connect_timeout (" +
                                                         std::to_string(connect_timeout) + " s)");
    }
    state = PQconnectPoll(conn);
  }
  session->registered_socket_ = PQsocket(conn);
  register_session_socket(session->registered_socket_);
  if (PQsetnonblocking(conn, 1) != 0) session->fail_connection(std::errc::io_error, "cannot connect: ");
  session->setup(params);
  return session;
}

void pg_session::setup(const session_params& params) {
  const deadline until = steady_clock::now() + std::max(milliseconds(10000), liveness_ * 3);
  // The server keeps a silent client's locks about three liveness periods
  // after it last heard from it, while the client gives up after one: the
  // holder always learns first. Keepalives bite on an idle session (the
  // server waits for the next command), tcp_user_timeout on unanswered data;
  // client_connection_check_interval lets a killed waiter's backend leave
  // the wait queue instead of being granted the lock.
  const std::string server_user_timeout = std::to_string(liveness_.count() * 3);
  const std::string idle = std::to_string(ceil_seconds(liveness_ * 2));
  const std::string interval = std::to_string(ceil_seconds(liveness_ / 2));
  const std::string check = std::to_string(std::min<long long>(1000, liveness_.count()));
  const char* values[] = {server_user_timeout.c_str(), idle.c_str(), interval.c_str(), "3", check.c_str()};
  const bool has_check_interval = PQserverVersion(conn_) >= 140000;
  const std::string settings =
      std::string(
          "set_config('tcp_user_timeout', $1, false), set_config('tcp_keepalives_idle', $2, false), "
          "set_config('tcp_keepalives_interval', $3, false), set_config('tcp_keepalives_count', $4, false)") +
      (has_check_interval ? ", set_config('client_connection_check_interval', $5, false)" : "");
  const int n = has_check_interval ? 5 : 4;
  pg_result r;
  try {
    send_params(("SELECT (SELECT system_identifier FROM pg_control_system())::text, current_database(), "
                 "pg_backend_pid(), " +
                 settings)
                    .c_str(),
                n, values);
    r = await_result(until);
  } catch (const pg_failure& e) {
    if (e.connection_gone()) throw;
    // No pg_control_system() here (an old server, or not allowed): the server
    // is then known by where we reached it.
    send_params(("SELECT NULL::text, current_database(), pg_backend_pid(), " + settings).c_str(), n, values);
    r = await_result(until);
  }
  std::string system = PQgetisnull(r.get(), 0, 0) ? std::string("host ") + (PQhost(conn_) ? PQhost(conn_) : "") +
                                                        " port " + (PQport(conn_) ? PQport(conn_) : "")
                                                  : std::string("system ") + PQgetvalue(r.get(), 0, 0);
  identity_ = system + " database " + PQgetvalue(r.get(), 0, 1);
  backend_pid_ = std::atoi(PQgetvalue(r.get(), 0, 2));
  last_answer_ = steady_clock::now();
  (void)params;
}

bool pg_session::usable() const noexcept { return !broken_ && conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }

int pg_session::socket() const noexcept { return conn_ != nullptr ? PQsocket(conn_) : -1; }

void pg_session::fail_connection(std::errc code, const std::string& what) {
  std::string message = what;
  if (what.size() >= 2 && what.compare(what.size() - 2, 2, ": ") == 0) message += pq_message(conn_);
  broken_ = true;
  throw pg_failure(code, message, {}, true);
}

bool pg_session::wait_socket(bool write, deadline until) {
  for (;;) {
    pollfd p{};
    p.fd = PQsocket(conn_);
    if (p.fd < 0) return true;  // let libpq report it
    p.events = static_cast<short>(write ? POLLOUT : POLLIN);
    const int n = ::poll(&p, 1, poll_timeout_ms(until));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return true;
  }
}

void pg_session::flush(deadline until) {
  for (;;) {
    const int r = PQflush(conn_);
    if (r == 0) return;
    if (r < 0) fail_connection(std::errc::connection_reset, "the server connection failed: ");
    // Writing blocks: read what the server sends meanwhile, so that neither side waits for the other.
    pollfd p{};
    p.fd = PQsocket(conn_);
    p.events = POLLIN | POLLOUT;
    const int n = ::poll(&p, 1, poll_timeout_ms(until));
    if (n == 0) fail_connection(std::errc::timed_out, "the server does not take our data");
    if (n > 0 && (p.revents & POLLIN) != 0 && PQconsumeInput(conn_) == 0) {
      fail_connection(std::errc::connection_reset, "the server connection failed: ");
    }
  }
}

void pg_session::send_params(const char* sql, int n_params, const char* const* values) {
  if (PQsendQueryParams(conn_, sql, n_params, nullptr, values, nullptr, nullptr, 0) == 0) {
    fail_connection(std::errc::connection_reset, "cannot send to the server: ");
  }
}

bool pg_session::prepared(const char* name) const {
  const std::string needle = std::string(";") + name + ";";
  return prepared_.find(needle) != std::string::npos;
}

void pg_session::send_prepared(const char* name, const char* sql, int n_params, const char* const* values,
                               deadline until) {
  if (!prepared(name)) {
    if (PQsendPrepare(conn_, name, sql, n_params, nullptr) == 0) {
      fail_connection(std::errc::connection_reset, "cannot send to the server: ");
    }
    flush(until);
    await_result(until);
    if (prepared_.empty()) prepared_ = ";";
    prepared_ += std::string(name) + ";";
  }
  if (PQsendQueryPrepared(conn_, name, n_params, values, nullptr, nullptr, 0) == 0) {
    fail_connection(std::errc::connection_reset, "cannot send to the server: ");
  }
}

pg_result pg_session::await_result(deadline until) {
  flush(until);
  pg_result last, error;
  for (;;) {
    while (PQisBusy(conn_) == 0) {
      PGresult* r = PQgetResult(conn_);
      if (r == nullptr) {
        if (error) {
          const std::string state = sqlstate_of(error.get());
          const bool gone = PQstatus(conn_) == CONNECTION_BAD;
          if (gone) broken_ = true;
          throw pg_failure(gone && state.empty() ? std::errc::connection_reset : errc_of_sqlstate(state),
                           trimmed(PQresultErrorMessage(error.get())), state, gone);
        }
        last_answer_ = steady_clock::now();
        return last;
      }
      const ExecStatusType status = PQresultStatus(r);
      if (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE || status == PGRES_NONFATAL_ERROR) {
        if (status != PGRES_NONFATAL_ERROR && !error) {
          error.reset(r);
        } else {
          PQclear(r);
        }
      } else {
        last.reset(r);
      }
    }
    if (!wait_socket(false, until)) {
      close();
      throw pg_failure(std::errc::timed_out, "no answer from the server in time", {}, true);
    }
    if (PQconsumeInput(conn_) == 0) fail_connection(std::errc::connection_reset, "the server connection failed: ");
  }
}

pg_result pg_session::exec(const std::string& sql, deadline until) {
  if (PQsendQuery(conn_, sql.c_str()) == 0) fail_connection(std::errc::connection_reset, "cannot send to the server: ");
  return await_result(until);
}

pg_result pg_session::exec_prepared(const char* name, const char* sql, int n_params, const char* const* values,
                                    deadline until) {
  send_prepared(name, sql, n_params, values, until);
  return await_result(until);
}

void pg_session::cancel() noexcept {
  PGcancel* c = PQgetCancel(conn_);
  if (c == nullptr) return;
  char message[256];
  (void)PQcancel(c, message, sizeof message);
  PQfreeCancel(c);
}

bool pg_session::send_heartbeat() noexcept {
  if (!usable() || heartbeat_outstanding_) return usable();
  if (PQsendQuery(conn_, "") == 0 || PQflush(conn_) < 0) {
    broken_ = true;
    return false;
  }
  heartbeat_outstanding_ = true;
  heartbeat_sent_ = steady_clock::now();
  return true;
}

bool pg_session::poll_input() noexcept {
  if (!usable()) return false;
  if (PQflush(conn_) < 0 || PQconsumeInput(conn_) == 0) {
    broken_ = true;
    return false;
  }
  if (!heartbeat_outstanding_) {
    // Nothing is expected: whatever came is a notice, or the server's
    // goodbye (FATAL, then end of file).
    PGnotify* n;
    while ((n = PQnotifies(conn_)) != nullptr) PQfreemem(n);
    return PQstatus(conn_) == CONNECTION_OK;
  }
  while (PQisBusy(conn_) == 0) {
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) {
      heartbeat_outstanding_ = false;
      last_answer_ = steady_clock::now();
      break;
    }
    PQclear(r);
  }
  return PQstatus(conn_) == CONNECTION_OK;
}

bool pg_session::finish_heartbeat(deadline until) noexcept {
  while (heartbeat_outstanding_) {
    if (!poll_input()) return false;
    if (!heartbeat_outstanding_) break;
    try {
      if (!wait_socket(false, until)) {
        close();
        return false;
      }
    } catch (...) {
      // A forced unwind (cancellation) cannot happen here: poll is only a
      // cancellation point, and callers disable cancellation around unlock.
      close();
      return false;
    }
  }
  return usable();
}

void pg_session::set_application_name(const std::string& name, deadline until) {
  const char* values[] = {name.c_str()};
  exec_prepared("fasteners_appname", "SELECT set_config('application_name', $1, false)", 1, values, until);
}

void pg_session::close() noexcept {
  broken_ = true;
  if (conn_ == nullptr) return;
  unregister_socket();
  PQfinish(conn_);  // non-blocking: the Terminate message is sent if it can be
  conn_ = nullptr;
}

void pg_session::forget_after_fork() noexcept {
  if (conn_ == nullptr) return;
  close_registered_socket(registered_socket_);
  registered_socket_ = -1;
  conn_ = nullptr;  // leaked on purpose
  broken_ = true;
}

}  // namespace fasteners::detail
