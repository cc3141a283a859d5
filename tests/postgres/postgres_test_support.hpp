// The postgres suite's server and small raw-libpq helpers for checking what
// the server sees.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace fasteners::test {

struct pg_cluster {
  std::string dir;           // the cluster's directory (data, socket, log)
  std::string conninfo;      // over its unix socket
  std::string tcp_conninfo;  // over 127.0.0.1
  int port = 0;
  bool owned = false;  // started here, stopped at exit
};

// $FASTENERS_POSTGRES_CONNINFO (and _TCP_CONNINFO), or a cluster started once
// for this run with scripts/postgres-cluster.sh; nullptr if neither works.
const pg_cluster* suite_cluster();
// Why there is no server (for the skip message).
std::string no_server_reason();
// A cluster of one's own (for restarts); stopped by stop_cluster.
std::optional<pg_cluster> start_cluster();
void stop_cluster(const pg_cluster& cluster);
// Runs scripts/postgres-cluster.sh with `args`; its exit status.
int cluster_script(const std::string& args);

// The first value of the first row, or "" (with a gtest failure) on error.
std::string query_value(const std::string& conninfo, const std::string& sql);
// How many sessions hold (granted) or wait for (!granted) the hash64 key of `name`.
int advisory_count(const std::string& conninfo, const std::string& name, bool granted);
// The backend pid holding `name` (hash64), or 0.
int holder_pid(const std::string& conninfo, const std::string& name);

std::string helper();
std::string unique_name(const std::string& stem);

// Exit codes of postgres_helper.
constexpr int pg_helper_got = 0;
constexpr int pg_helper_busy = 1;
constexpr int pg_helper_error = 70;
constexpr int pg_helper_deadlock = 3;

}  // namespace fasteners::test

// Skips (or, with FASTENERS_REQUIRE_POSTGRES=1, fails) without a server.
#define FASTENERS_REQUIRE_SERVER()                                                            \
  const ::fasteners::test::pg_cluster* cluster = ::fasteners::test::suite_cluster();          \
  if (cluster == nullptr) {                                                                   \
    const char* require = std::getenv("FASTENERS_REQUIRE_POSTGRES");                          \
    if (require != nullptr && std::string(require) == "1") {                                  \
      FAIL() << "FASTENERS_REQUIRE_POSTGRES=1 but " << ::fasteners::test::no_server_reason(); \
    }                                                                                         \
    GTEST_SKIP() << ::fasteners::test::no_server_reason();                                    \
  }
