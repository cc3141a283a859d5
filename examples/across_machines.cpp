// The demo's cross-machine part, on PostgreSQL advisory locks (component
// fasteners::postgres). Processes play the machines: each would run on its own
// host with the same conninfo.
//   1. Machines take turns on one postgres_lock to update a shared ledger;
//      fencing tokens let the ledger reject a stale holder's write.
//   2. An administrator terminates the session under a holder
//      (pg_terminate_backend): the holder notices, through lost(), on_lost()
//      and ensure_held(), and carries on.
//
//   across_machines CONNINFO [MACHINES [TURNS]]
#include <fasteners/postgres_lock.hpp>

#include <libpq-fe.h>  // only for the administrator in part 2
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

// The shared resource: a count and the fencing token of its last writer. A
// real one (a bucket, a table) would live where every machine reaches it.
struct ledger {
  long count = 0;
  std::int64_t token = 0;
};

ledger read_ledger(const fs::path& path) {
  ledger l;
  std::ifstream(path) >> l.count >> l.token;
  return l;
}

// What the resource does with a write: refuse one whose token is not newer
// than the last one it accepted (a holder that lost its lock without knowing).
bool write_ledger(const fs::path& path, long count, std::int64_t token) {
  if (token <= read_ledger(path).token) return false;
  std::ofstream(path, std::ios::trunc) << count << ' ' << token << '\n';
  return true;
}

int machine(int id, const std::string& conninfo, const fs::path& path, int turns) {
  fasteners::postgres_options options{conninfo};
  options.fencing_tokens = true;
  fasteners::postgres_lock lock("demo-ledger", options);
  double longest_wait_ms = 0;
  std::int64_t first = 0, last = 0;
  int refused = 0;
  for (int turn = 0; turn < turns; ++turn) {
    const auto asked = clock_type::now();
    std::lock_guard<fasteners::postgres_lock> guard(lock);
    longest_wait_ms =
        std::max(longest_wait_ms, std::chrono::duration<double, std::milli>(clock_type::now() - asked).count());
    const std::int64_t token = lock.fencing_token();
    if (first == 0) first = token;
    last = token;
    const ledger seen = read_ledger(path);
    std::this_thread::sleep_for(1ms);  // another holder now would make an update vanish
    if (!write_ledger(path, seen.count + 1, token)) ++refused;
  }
  std::ostringstream line;
  line << std::fixed << std::setprecision(1) << "  machine " << id << ": " << turns << " turns, fencing tokens "
       << first << ".." << last << ", longest wait " << longest_wait_ms << " ms" << (refused ? ", WRITES REFUSED" : "")
       << "\n";
  std::cout << line.str() << std::flush;
  return refused == 0 ? 0 : 1;
}

pid_t spawn_self(const char* self, std::vector<std::string> args) {
  args.insert(args.begin(), self);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  return posix_spawn(&pid, self, nullptr, nullptr, argv.data(), environ) == 0 ? pid : -1;
}

int take_turns(const char* self, const std::string& conninfo, int machines, int turns) {
  const fs::path path = fs::temp_directory_path() / ("fasteners-ledger-" + std::to_string(::getpid()));
  std::ofstream(path, std::ios::trunc) << "0 0\n";
  std::cout << machines << " machines x " << turns << " turns update one ledger under postgres_lock \"demo-ledger\":\n"
            << std::flush;
  std::vector<pid_t> children;
  for (int m = 0; m < machines; ++m) {
    children.push_back(
        spawn_self(self, {"--machine", std::to_string(m), conninfo, path.string(), std::to_string(turns)}));
  }
  int failures = 0;
  for (pid_t child : children) {
    int status = 0;
    if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ++failures;
    }
  }
  const ledger end = read_ledger(path);
  fs::remove(path);
  const long expected = long{machines} * turns;
  std::cout << "ledger = " << end.count << ", expected " << expected << " ("
            << (end.count == expected ? "nothing lost" : "UPDATES LOST") << "); machines failed: " << failures << "\n";
  return end.count == expected && failures == 0 ? 0 : 1;
}

// What an administrator (or a failover) does from elsewhere: end the session
// that holds the lock.
int terminate_holder(const std::string& conninfo, const std::string& name) {
  PGconn* admin = PQconnectdb(conninfo.c_str());
  const auto key = static_cast<std::uint64_t>(fasteners::postgres_hash64_key(name));
  const std::string sql =
      "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
      "classid = " +
      std::to_string(key >> 32) + " AND objid = " + std::to_string(key & 0xffffffffu) + " AND objsubid = 1";
  PGresult* r = PQexec(admin, sql.c_str());
  const int terminated = PQresultStatus(r) == PGRES_TUPLES_OK ? std::atoi(PQgetvalue(r, 0, 0)) : -1;
  if (terminated < 0) std::cerr << "across_machines: " << PQerrorMessage(admin);
  PQclear(r);
  PQfinish(admin);
  return terminated;
}

int lose_a_lock(const std::string& conninfo) {
  fasteners::postgres_options options{conninfo};
  options.liveness = 1s;  // how soon the holder learns that its session is gone
  fasteners::postgres_lock lease("demo-lease", options);
  std::atomic<bool> told{false};
  lease.on_lost([&told] { told = true; });  // runs once, on the library's watcher thread

  lease.lock();
  std::cout << "a holder takes \"demo-lease\" (liveness 1 s); an administrator terminates its session: "
            << terminate_holder(conninfo, lease.name()) << " terminated\n";
  const auto killed = clock_type::now();
  while (!(lease.lost() && told) && clock_type::now() - killed < 10s) std::this_thread::sleep_for(1ms);
  const auto noticed_ms = std::chrono::duration<double, std::milli>(clock_type::now() - killed).count();
  if (!lease.lost() || !told) {
    std::cout << "  the holder did not notice within 10 s\n";
    return 1;
  }
  std::cout << std::fixed << std::setprecision(1) << "  holder: lost() after " << noticed_ms << " ms, on_lost ran\n";
  try {
    lease.ensure_held();
    std::cout << "  holder: ensure_held() did not throw\n";
    return 1;
  } catch (const fasteners::lock_lost& e) {
    std::cout << "  holder: ensure_held() throws lock_lost: " << e.what() << "\n";
  }
  lease.unlock();  // never throws for a lost hold
  {
    std::lock_guard<fasteners::postgres_lock> guard(lease);  // a new session
    lease.ensure_held();
    std::cout << "  holder: unlock() did not throw; locked again on a new session, lost() = " << std::boolalpha
              << lease.lost() << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 6 && std::string(argv[1]) == "--machine") {
      return machine(std::atoi(argv[2]), argv[3], argv[4], std::atoi(argv[5]));
    }
    if (argc < 2 || argc > 4) {
      std::cerr << "usage: across_machines CONNINFO [MACHINES [TURNS]]\n";
      return 64;
    }
    std::cout << std::unitbuf;  // in order with libpq's messages on stderr
    const int machines = argc > 2 ? std::atoi(argv[2]) : 3;
    const int turns = argc > 3 ? std::atoi(argv[3]) : 20;
    const int turns_failed = take_turns(argv[0], argv[1], machines, turns);
    const int lost_failed = lose_a_lock(argv[1]);
    return turns_failed != 0 || lost_failed != 0 ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "across_machines: " << e.what() << "\n";
    return 2;
  }
}
