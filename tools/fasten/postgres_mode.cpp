#include "postgres_mode.hpp"

#include <fasteners/postgres_lock.hpp>

#include "run_command.hpp"

#include <libpq-fe.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <system_error>

namespace fasten {

namespace {

std::string seconds_since(std::chrono::steady_clock::time_point start) {
  const std::chrono::duration<double> waited = std::chrono::steady_clock::now() - start;
  char text[32];
  std::snprintf(text, sizeof text, "%.6f s", waited.count());
  return text;
}

fasteners::postgres_options options_of(const options& opt) {
  fasteners::postgres_options o;
  o.conninfo = *opt.postgres_conninfo;
  if (opt.tooz) o.key_scheme = fasteners::postgres_key_scheme::tooz;
  return o;
}

int report(const options& opt, const std::system_error& e) {
  std::cerr << "fasten: " << e.what() << "\n";
  (void)opt;
  return e.code() == std::errc::permission_denied ? exit_code::no_permission : exit_code::os_error;
}

std::atomic<bool> lost{false};

}  // namespace

int run_postgres(const options& opt) {
  const std::string what = "'" + opt.lock_file + "'";
  fasteners::postgres_reader_writer_lock lock(opt.lock_file, options_of(opt));
  const auto start = std::chrono::steady_clock::now();
  const bool single_try = opt.nonblocking || (opt.timeout_seconds && *opt.timeout_seconds <= 0);
  bool got = false;
  try {
    got = opt.shared ? lock.try_lock_shared() : lock.try_lock();
    if (!got && !single_try) {
      if (opt.verbose) std::cerr << "fasten: " << what << " is locked; waiting\n";
      if (opt.timeout_seconds) {
        const std::chrono::duration<double> timeout(*opt.timeout_seconds);
        got = opt.shared ? lock.try_lock_shared_for(timeout) : lock.try_lock_for(timeout);
      } else {
        opt.shared ? lock.lock_shared() : lock.lock();
        got = true;
      }
    }
  } catch (const std::system_error& e) {
    return report(opt, e);
  }
  if (!got) {
    if (opt.verbose) std::cerr << "fasten: gave up after " << seconds_since(start) << ": " << what << " is locked\n";
    return opt.conflict_exit_code;
  }
  if (opt.verbose) {
    std::cerr << "fasten: waited " << seconds_since(start) << " for the " << (opt.shared ? "shared" : "exclusive")
              << " lock " << what << "\n";
  }
  // The lock can be lost while the command runs (the server restarts, the
  // session is terminated, the network fails): the command must not go on
  // believing it is alone. SIGTERM to ourselves is relayed to the command.
  lock.on_lost([what] {
    lost.store(true);
    static const char message[] = "fasten: the lock was lost while the command ran; sending it SIGTERM\n";
    (void)!::write(2, message, sizeof message - 1);
    ::kill(::getpid(), SIGTERM);
  });
  command_request request;
  request.argv = opt.shell_command ? shell_command(*opt.shell_command) : opt.command;
  bool inherited = false;  // a server session cannot be inherited: only fasten holds it (-o changes nothing)
  const int status = run_command(request, inherited);
  if (lost.load()) return lost_lock_exit_code;
  try {
    opt.shared ? lock.unlock_shared() : lock.unlock();
  } catch (const std::system_error&) {
  }
  return lost.load() ? lost_lock_exit_code : status;
}

int show_postgres_status(const options& opt) {
  PGconn* conn = PQconnectdb(opt.postgres_conninfo->c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::cerr << "fasten: cannot connect: " << PQerrorMessage(conn);
    PQfinish(conn);
    return exit_code::os_error;
  }
  std::string condition;
  if (opt.tooz) {
    const auto keys = fasteners::postgres_tooz_keys(opt.lock_file);
    condition = "l.classid = " + std::to_string(keys.first) + " AND l.objid = " + std::to_string(keys.second) +
                " AND l.objsubid = 2";
  } else {
    const auto u = static_cast<unsigned long long>(fasteners::postgres_hash64_key(opt.lock_file));
    condition = "l.classid = " + std::to_string(u >> 32) + " AND l.objid = " + std::to_string(u & 0xffffffffu) +
                " AND l.objsubid = 1";
  }
  const std::string sql =
      "SELECT l.mode, l.pid, coalesce(host(a.client_addr), 'local'), a.application_name FROM pg_locks l "
      "LEFT JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.granted AND "
      "l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND " +
      condition + " ORDER BY l.pid";
  PGresult* r = PQexec(conn, sql.c_str());
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    std::cerr << "fasten: cannot read pg_locks: " << PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(conn);
    return exit_code::os_error;
  }
  int code = exit_code::status_free;
  std::string holders;
  for (int i = 0; i < PQntuples(r); ++i) {
    const std::string mode = PQgetvalue(r, i, 0);
    code = mode == "ExclusiveLock" ? exit_code::status_exclusive : exit_code::status_shared;
    holders += std::string(i == 0 ? "" : ", ") + "backend pid " + PQgetvalue(r, i, 1) + " (client " +
               PQgetvalue(r, i, 2) + ", " + PQgetvalue(r, i, 3) + ")";
  }
  PQclear(r);
  PQfinish(conn);
  std::cout << opt.lock_file << ": "
            << (code == exit_code::status_free     ? "free"
                : code == exit_code::status_shared ? "held shared by " + holders
                                                   : "held exclusive by " + holders)
            << "\n";
  return code;
}

}  // namespace fasten
