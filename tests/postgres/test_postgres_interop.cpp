// The tooz key scheme against OpenStack tooz's PostgreSQL driver (Debian's
// python3-tooz + python3-psycopg2), both ways.
#include "postgres_test_support.hpp"
#include "test_support.hpp"

#include <fasteners/postgres_lock.hpp>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace fasteners::test {
namespace {

using namespace std::chrono_literals;

// A Python that has tooz, or "".
std::string tooz_python() {
  for (const char* python : {"/usr/bin/python3", "python3"}) {
    const std::string command = std::string(python) + " -c 'import tooz.drivers.pgsql, psycopg2' >/dev/null 2>&1";
    if (std::system(command.c_str()) == 0) return python;
  }
  return "";
}

#define FASTENERS_REQUIRE_TOOZ(python)                                                                  \
  const std::string python = tooz_python();                                                             \
  if (python.empty()) {                                                                                 \
    const char* require = std::getenv("FASTENERS_REQUIRE_PYTHON");                                      \
    if (require != nullptr && std::string(require) == "1") FAIL() << "no python3-tooz";                 \
    GTEST_SKIP() << "no Python with tooz and psycopg2 (apt-get install python3-tooz python3-psycopg2)"; \
  }

std::string peer() { return std::string(FASTENERS_SOURCE_DIR) + "/tests/postgres/tooz_peer.py"; }

std::string tooz_url(const pg_cluster& c) {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(c.port) + "/postgres";
}

postgres_options tooz_options(const pg_cluster& c) {
  postgres_options o;
  o.conninfo = c.tcp_conninfo;
  o.key_scheme = postgres_key_scheme::tooz;
  return o;
}

// The tooz keys of `name` in pg_locks, in this database: who holds them.
std::string tooz_locks_condition(const std::string& name) {
  const auto keys = postgres_tooz_keys(name);
  return "l.locktype = 'advisory' AND l.classid = " + std::to_string(keys.first) +
         " AND l.objid = " + std::to_string(keys.second) +
         " AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";
}

int tooz_holders(const pg_cluster& c, const std::string& name) {
  return std::atoi(
      query_value(c.conninfo, "SELECT count(*) FROM pg_locks l WHERE " + tooz_locks_condition(name) + " AND l.granted")
          .c_str());
}

// What the server says about the key, for a failure message.
std::string tooz_lock_report(const pg_cluster& c, const std::string& name) {
  return query_value(c.conninfo,
                     "SELECT coalesce(string_agg(format('pid %s granted %s application %L state %s', l.pid, l.granted, "
                     "a.application_name, a.state), '; '), 'nobody') FROM pg_locks l LEFT JOIN pg_stat_activity a "
                     "ON a.pid = l.pid WHERE " +
                         tooz_locks_condition(name));
}

TEST(PostgresTooz, ToozHolderExcludesUs) {
  FASTENERS_REQUIRE_SERVER();
  FASTENERS_REQUIRE_TOOZ(python);
  if (cluster->port == 0) GTEST_SKIP() << "the server's TCP port is unknown (set FASTENERS_POSTGRES_PORT)";
  const std::string name = unique_name("tooz-a");
  child_process holder(python, {peer(), tooz_url(*cluster), name, "hold"});
  ASSERT_TRUE(holder.wait_for_line("locked"));
  // tooz says it holds the lock once pg_advisory_lock answered; the server
  // must agree before we try (and says who holds what if we get in anyway).
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (tooz_holders(*cluster, name) != 1 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(tooz_holders(*cluster, name), 1) << tooz_lock_report(*cluster, name);
  postgres_lock lock(name, tooz_options(*cluster));
  if (lock.try_lock()) {
    ADD_FAILURE() << "try_lock() got the lock tooz holds; the server: " << tooz_lock_report(*cluster, name);
    lock.unlock();
  }
  EXPECT_FALSE(lock.try_lock_for(300ms)) << tooz_lock_report(*cluster, name);
  // The hash64 key space is another: no conflict there.
  postgres_lock other_scheme(name, postgres_options{cluster->conninfo});
  EXPECT_TRUE(other_scheme.try_lock());
  other_scheme.unlock();
  holder.close_stdin();
  EXPECT_TRUE(lock.try_lock_for(20s));
  lock.unlock();
}

TEST(PostgresTooz, WeExcludeToozBothWays) {
  FASTENERS_REQUIRE_SERVER();
  FASTENERS_REQUIRE_TOOZ(python);
  if (cluster->port == 0) GTEST_SKIP() << "the server's TCP port is unknown (set FASTENERS_POSTGRES_PORT)";
  const std::string name = unique_name("tooz-b");
  postgres_lock lock(name, tooz_options(*cluster));
  lock.lock();
  EXPECT_EQ(child_process(python, {peer(), tooz_url(*cluster), name, "try"}).wait(), 1);
  // A blocking tooz acquire waits for us, and gets it when we let go.
  child_process waiter(python, {peer(), tooz_url(*cluster), name, "wait"});
  std::this_thread::sleep_for(500ms);
  lock.unlock();
  EXPECT_TRUE(waiter.wait_for_line("locked", 30s));
  EXPECT_EQ(waiter.wait(), 0);
  EXPECT_EQ(child_process(python, {peer(), tooz_url(*cluster), name, "try"}).wait(), 0);
}

}  // namespace
}  // namespace fasteners::test
