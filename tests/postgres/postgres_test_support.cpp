#include "postgres_test_support.hpp"

#include <libpq-fe.h>

#include <fasteners/postgres_lock.hpp>

#include <unistd.h>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>

namespace fasteners::test {

namespace {

std::string reason = "no PostgreSQL server: set FASTENERS_POSTGRES_CONNINFO or install postgresql";

std::map<std::string, std::string> parse_assignments(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string value = line.substr(eq + 1);
    if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') value = value.substr(1, value.size() - 2);
    out[line.substr(0, eq)] = value;
  }
  return out;
}

std::string run_capture(const std::string& command, int* status) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) {
    *status = -1;
    return out;
  }
  char buffer[512];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, p)) > 0) out.append(buffer, n);
  *status = ::pclose(p);
  return out;
}

pg_cluster* the_cluster = nullptr;

void stop_suite_cluster() {
  if (the_cluster != nullptr && the_cluster->owned) stop_cluster(*the_cluster);
}

}  // namespace

int cluster_script(const std::string& args) {
  const std::string command = std::string(FASTENERS_SOURCE_DIR) + "/scripts/postgres-cluster.sh " + args;
  return std::system(command.c_str());
}

std::optional<pg_cluster> start_cluster() {
  int status = 0;
  const std::string out =
      run_capture(std::string(FASTENERS_SOURCE_DIR) + "/scripts/postgres-cluster.sh start 2>&1", &status);
  if (status != 0) {
    reason = "cannot start a PostgreSQL cluster: " + out;
    return std::nullopt;
  }
  auto env = parse_assignments(out);
  pg_cluster c;
  c.dir = env["FASTENERS_POSTGRES_DIR"];
  c.conninfo = env["FASTENERS_POSTGRES_CONNINFO"];
  c.tcp_conninfo = env["FASTENERS_POSTGRES_TCP_CONNINFO"];
  c.port = std::atoi(env["FASTENERS_POSTGRES_PORT"].c_str());
  c.owned = true;
  return c;
}

void stop_cluster(const pg_cluster& cluster) {
  if (!cluster.dir.empty()) cluster_script("stop '" + cluster.dir + "' immediate >/dev/null 2>&1");
}

const pg_cluster* suite_cluster() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* conninfo = std::getenv("FASTENERS_POSTGRES_CONNINFO");
    if (conninfo != nullptr && *conninfo != '\0') {
      auto* c = new pg_cluster;
      c->conninfo = conninfo;
      const char* tcp = std::getenv("FASTENERS_POSTGRES_TCP_CONNINFO");
      c->tcp_conninfo = tcp != nullptr ? tcp : conninfo;
      const char* dir = std::getenv("FASTENERS_POSTGRES_DIR");
      c->dir = dir != nullptr ? dir : "";
      const char* port = std::getenv("FASTENERS_POSTGRES_PORT");
      c->port = port != nullptr ? std::atoi(port) : 0;
      the_cluster = c;
      return;
    }
    if (auto started = start_cluster()) {
      the_cluster = new pg_cluster(*started);
      std::atexit(stop_suite_cluster);
    }
  });
  return the_cluster;
}

std::string no_server_reason() { return reason; }

std::string query_value(const std::string& conninfo, const std::string& sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  std::string value;
  if (PQstatus(conn) != CONNECTION_OK) {
    ADD_FAILURE() << "cannot connect: " << PQerrorMessage(conn);
  } else {
    PGresult* r = PQexec(conn, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
      value = PQgetvalue(r, 0, 0);
    } else if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
      ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
    }
    PQclear(r);
  }
  PQfinish(conn);
  return value;
}

namespace {
std::string key_condition(const std::string& name) {
  const auto u = static_cast<std::uint64_t>(postgres_hash64_key(name));
  return "locktype = 'advisory' AND classid = " + std::to_string(u >> 32) +
         " AND objid = " + std::to_string(u & 0xffffffffu) + " AND objsubid = 1";
}
}  // namespace

int advisory_count(const std::string& conninfo, const std::string& name, bool granted) {
  return std::atoi(query_value(conninfo, "SELECT count(*) FROM pg_locks WHERE " + key_condition(name) +
                                             " AND granted = " + (granted ? "true" : "false"))
                       .c_str());
}

int holder_pid(const std::string& conninfo, const std::string& name) {
  return std::atoi(
      query_value(conninfo, "SELECT coalesce(max(pid), 0) FROM pg_locks WHERE " + key_condition(name) + " AND granted")
          .c_str());
}

std::string helper() { return FASTENERS_POSTGRES_HELPER; }

std::string unique_name(const std::string& stem) {
  static std::atomic<int> counter{0};
  return stem + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

}  // namespace fasteners::test
