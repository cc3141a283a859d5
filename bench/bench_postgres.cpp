// postgres_lock against raw libpq on a kept connection, and Python tooz.
//
//   bench_postgres --socket CONNINFO [--tcp CONNINFO] [--iterations N] [--repetitions R]
//                  [--handoffs N] [--blocks B] [--hold-us N] [--tooz-url URL] [--tooz-pairs N]
//                  [--python PATH] [--json FILE]
//
// Uncontended: try_lock+unlock on postgres_lock against a raw libpq prepared
// pg_try_advisory_lock + pg_advisory_unlock pair, over each transport. Each
// repetition times N pairs of every variant, in a fresh random order, so that
// load drift hits raw and library alike; best and median of the repetitions.
//
// Handoff: two processes hand one lock back and forth, the waiter blocked in
// the server (pg_advisory_lock on its own kept connection, or
// postgres_lock::lock()). The latency runs from the holder reading
// CLOCK_MONOTONIC just before it sends the unlock to the waiter reading it
// right after its lock returns. Turn protocol over two pipes, as in
// bench/handoff.cpp:
//   waiter: sends 'w', then locks (and blocks in the server);
//   holder: reads 'w', polls pg_locks (on a third connection) until the
//           waiter's request is queued and not granted, waits until /proc
//           shows the waiter's process asleep, waits a random 0..hold-us more,
//           stores the time, unlocks, then reads 'a';
//   waiter: once it has the lock, records the latency and sends 'a'.
// The roles then swap. Raw and library take turns in --blocks blocks, each in
// two fresh processes; the first two handoffs of a block (each process's
// first wait, which prepares its statement) are not counted.
//
// Tooz: Python tooz's PostgreSQL driver, non-blocking acquire + release on
// the same server (it connects for every acquisition).
#include <fasteners/postgres_lock.hpp>

#include "handoff_protocol.hpp"

#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

void bench::die(const std::string& what) {
  std::fprintf(stderr, "bench_postgres[%d]: %s\n", static_cast<int>(::getpid()), what.c_str());
  std::fflush(stderr);
  ::_exit(1);
}

namespace {

using bench::die;
using bench::expect;
using bench::header_bytes;
using bench::lock_ops;
using bench::monotonic_ns;
using bench::role_setup;
using bench::run_role;
using bench::send;
using bench::shared_view;

using clock_type = std::chrono::steady_clock;

struct options {
  std::vector<std::pair<std::string, std::string>> transports;  // {label, conninfo}
  int iterations = 2000;
  int repetitions = 15;
  int handoffs = 1000;
  int blocks = 25;
  int hold_us = 300;
  int timeout_s = 120;
  std::string tooz_url;
  int tooz_pairs = 50;
  std::string python = ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  std::string json;
};

// ---- raw libpq -----------------------------------------------------------

struct conn_deleter {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
using conn_ptr = std::unique_ptr<PGconn, conn_deleter>;

conn_ptr connect_or_die(const std::string& conninfo) {
  conn_ptr c(PQconnectdb(conninfo.c_str()));
  if (PQstatus(c.get()) != CONNECTION_OK) die(std::string("cannot connect: ") + PQerrorMessage(c.get()));
  return c;
}

void prepare_or_die(PGconn* c, const char* name, const char* sql) {
  PGresult* r = PQprepare(c, name, sql, 1, nullptr);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) die(std::string("prepare: ") + PQerrorMessage(c));
  PQclear(r);
}

// Runs a prepared statement with the one key parameter; true if it answered 't'.
bool exec_key(PGconn* c, const char* name, const char* const* key) {
  PGresult* r = PQexecPrepared(c, name, 1, key, nullptr, nullptr, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) die(std::string(name) + ": " + PQerrorMessage(c));
  const bool t = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  return t;
}

// ---- statistics ------------------------------------------------------------

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double median(const std::vector<double>& v) {
  std::vector<double> s = v;
  std::sort(s.begin(), s.end());
  const std::size_t n = s.size();
  return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

std::string json_list(const std::vector<double>& v) {
  std::string out = "[";
  char buf[32];
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.3f", i == 0 ? "" : ", ", v[i]);
    out += buf;
  }
  return out + "]";
}

// ---- uncontended -----------------------------------------------------------

struct uncontended_result {
  std::string transport;
  std::vector<double> raw, library;  // microseconds per pair, one per repetition
};

class raw_pair {
 public:
  raw_pair(const std::string& conninfo, const std::string& name)
      : conn_(connect_or_die(conninfo)), key_(std::to_string(fasteners::postgres_hash64_key(name))) {
    prepare_or_die(conn_.get(), "t", "SELECT pg_try_advisory_lock($1)");
    prepare_or_die(conn_.get(), "u", "SELECT pg_advisory_unlock($1)");
  }
  void run(int n) {
    const char* values[] = {key_.c_str()};
    for (int i = 0; i < n; ++i) {
      if (!exec_key(conn_.get(), "t", values)) die("raw pg_try_advisory_lock answered false");
      if (!exec_key(conn_.get(), "u", values)) die("raw pg_advisory_unlock answered false");
    }
  }

 private:
  conn_ptr conn_;
  std::string key_;
};

// Each transport its own name: two objects on one name share one session
// (the server is known by its identity, not by the conninfo).
class library_pair {
 public:
  library_pair(const std::string& conninfo, const std::string& name)
      : lock_(name, fasteners::postgres_options{conninfo}) {
    lock_.lock();  // connects and prepares outside the measurement
    lock_.unlock();
  }
  void run(int n) {
    for (int i = 0; i < n; ++i) {
      if (!lock_.try_lock()) die("postgres_lock::try_lock() answered false, uncontended");
      lock_.unlock();
    }
  }

 private:
  fasteners::postgres_lock lock_;
};

double time_us_per_pair(int n, const std::function<void(int)>& run) {
  const auto t0 = clock_type::now();
  run(n);
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count() / n;
}

std::vector<uncontended_result> run_uncontended(const options& opt) {
  std::vector<uncontended_result> results;
  std::vector<std::unique_ptr<raw_pair>> raws;
  std::vector<std::unique_ptr<library_pair>> libs;
  for (const auto& [label, conninfo] : opt.transports) {
    results.push_back(uncontended_result{label, {}, {}});
    raws.push_back(std::make_unique<raw_pair>(conninfo, "bench-raw-" + label));
    libs.push_back(std::make_unique<library_pair>(conninfo, "bench-lib-" + label));
  }
  // A short warm-up of each, then the repetitions in a fresh order each time.
  const int warm = std::max(1, opt.iterations / 10);
  for (std::size_t t = 0; t < results.size(); ++t) {
    raws[t]->run(warm);
    libs[t]->run(warm);
  }
  std::vector<std::pair<std::size_t, bool>> cells;  // {transport, library?}
  for (std::size_t t = 0; t < results.size(); ++t) {
    cells.push_back({t, false});
    cells.push_back({t, true});
  }
  std::minstd_rand random(12);
  for (int r = 0; r < opt.repetitions; ++r) {
    std::shuffle(cells.begin(), cells.end(), random);
    for (const auto& cell : cells) {
      const std::size_t t = cell.first;
      if (cell.second) {
        results[t].library.push_back(time_us_per_pair(opt.iterations, [&](int n) { libs[t]->run(n); }));
      } else {
        results[t].raw.push_back(time_us_per_pair(opt.iterations, [&](int n) { raws[t]->run(n); }));
      }
    }
  }
  return results;
}

// ---- handoff ---------------------------------------------------------------

class raw_ops : public lock_ops {
 public:
  raw_ops(const std::string& conninfo, const std::string& name)
      : conn_(connect_or_die(conninfo)), key_(std::to_string(fasteners::postgres_hash64_key(name))) {
    prepare_or_die(conn_.get(), "l", "SELECT pg_advisory_lock($1)");
    prepare_or_die(conn_.get(), "u", "SELECT pg_advisory_unlock($1)");
  }
  void acquire() override {
    const char* values[] = {key_.c_str()};
    PGresult* r = PQexecPrepared(conn_.get(), "l", 1, values, nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) die(std::string("pg_advisory_lock: ") + PQerrorMessage(conn_.get()));
    PQclear(r);
  }
  void release() override {
    const char* values[] = {key_.c_str()};
    if (!exec_key(conn_.get(), "u", values)) die("raw pg_advisory_unlock answered false");
  }

 private:
  conn_ptr conn_;
  std::string key_;
};

class library_ops : public lock_ops {
 public:
  library_ops(const std::string& conninfo, const std::string& name)
      : lock_(name, fasteners::postgres_options{conninfo}) {}
  void acquire() override { lock_.lock(); }
  void release() override { lock_.unlock(); }

 private:
  fasteners::postgres_lock lock_;
};

// Polls pg_locks until a request for `name` waits (not granted).
class queue_watch {
 public:
  queue_watch(const std::string& conninfo, const std::string& name) : conn_(connect_or_die(conninfo)) {
    const auto u = static_cast<std::uint64_t>(fasteners::postgres_hash64_key(name));
    sql_ = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = " +
           std::to_string(u >> 32) + " AND objid = " + std::to_string(u & 0xffffffffu) + " AND objsubid = 1";
  }
  void wait_until_queued() {
    const std::int64_t give_up = monotonic_ns() + 10'000'000'000;
    for (;;) {
      PGresult* r = PQexec(conn_.get(), sql_.c_str());
      if (PQresultStatus(r) != PGRES_TUPLES_OK) die(std::string("pg_locks: ") + PQerrorMessage(conn_.get()));
      const bool queued = std::atoi(PQgetvalue(r, 0, 0)) > 0;
      PQclear(r);
      if (queued) return;
      if (monotonic_ns() > give_up) die("the waiter never showed in pg_locks");
      const timespec pause{0, 50'000};
      ::nanosleep(&pause, nullptr);
    }
  }

 private:
  conn_ptr conn_;
  std::string sql_;
};

// One block of one variant in two fresh processes: the latencies (ns), the
// first two left out.
std::vector<std::int64_t> run_handoff_block(const options& opt, bool library, const std::string& conninfo,
                                            const std::string& name, int rounds) {
  constexpr int warm_up = 2;
  rounds += warm_up;
  const std::size_t bytes = header_bytes + 8 * static_cast<std::size_t>(rounds);
  void* mapped = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) die("mmap failed");
  const shared_view shm{static_cast<unsigned char*>(mapped)};
  for (int k = 0; k < rounds; ++k) shm.set_latency(k, -1);

  int zero_to_one[2], one_to_zero[2];
  if (::pipe(zero_to_one) != 0 || ::pipe(one_to_zero) != 0) die("pipe failed");
  pid_t pids[2];
  for (int role = 0; role < 2; ++role) {
    const int in_fd = role == 0 ? one_to_zero[0] : zero_to_one[0];
    const int out_fd = role == 0 ? zero_to_one[1] : one_to_zero[1];
    std::fflush(nullptr);
    pids[role] = ::fork();
    if (pids[role] < 0) die("fork failed");
    if (pids[role] > 0) continue;
    for (int fd : {zero_to_one[0], zero_to_one[1], one_to_zero[0], one_to_zero[1]}) {
      if (fd != in_fd && fd != out_fd) ::close(fd);
    }
    try {
      queue_watch queue(conninfo, name);
      std::unique_ptr<lock_ops> ops;
      if (library) {
        ops = std::make_unique<library_ops>(conninfo, name);
      } else {
        ops = std::make_unique<raw_ops>(conninfo, name);
      }
      run_role(role_setup{role, in_fd, out_fd, shm, rounds, opt.hold_us}, *ops, [&] { queue.wait_until_queued(); });
    } catch (const std::exception& e) {
      die(e.what());
    }
    ::_exit(0);
  }
  for (int fd : {zero_to_one[0], zero_to_one[1], one_to_zero[0], one_to_zero[1]}) ::close(fd);

  const std::int64_t give_up = monotonic_ns() + static_cast<std::int64_t>(opt.timeout_s) * 1000000000;
  bool ok = true;
  for (int role = 0; role < 2; ++role) {
    int status = 0;
    while (::waitpid(pids[role], &status, WNOHANG) != pids[role]) {
      if (monotonic_ns() > give_up) {
        std::fprintf(stderr, "bench_postgres: a handoff block timed out after %d s\n", opt.timeout_s);
        for (pid_t p : pids) ::kill(p, SIGKILL);
      }
      const timespec pause{0, 2'000'000};
      ::nanosleep(&pause, nullptr);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ok = false;
  }
  if (!ok) die(std::string("a ") + (library ? "library" : "raw") + " handoff block failed");
  std::vector<std::int64_t> latencies;
  for (int k = warm_up; k < rounds; ++k) {
    if (shm.latency(k) < 0) die("a handoff was not recorded");
    latencies.push_back(shm.latency(k));
  }
  ::munmap(mapped, bytes);
  return latencies;
}

struct handoff_result {
  std::string transport;
  std::vector<double> raw, library;  // microseconds, one per handoff
};

std::vector<handoff_result> run_handoff(const options& opt) {
  std::vector<handoff_result> results;
  for (const auto& [label, conninfo] : opt.transports) {
    handoff_result h{label, {}, {}};
    for (int block = 0; block < opt.blocks; ++block) {
      const int rounds = opt.handoffs / opt.blocks + (block < opt.handoffs % opt.blocks ? 1 : 0);
      if (rounds == 0) continue;
      // Alternate which goes first, so that neither always follows the other.
      for (int i = 0; i < 2; ++i) {
        const bool library = (block + i) % 2 == 1;
        const auto ns = run_handoff_block(opt, library, conninfo,
                                          std::string("bench-handoff-") + (library ? "lib-" : "raw-") + label, rounds);
        for (auto v : ns) (library ? h.library : h.raw).push_back(static_cast<double>(v) / 1000.0);
      }
    }
    results.push_back(std::move(h));
  }
  return results;
}

// ---- tooz ------------------------------------------------------------------

std::optional<double> tooz_pair_us(const options& opt) {
  const std::string command = opt.python +
                              " -c \"import time; from tooz import coordination\n"
                              "c = coordination.get_coordinator('" +
                              opt.tooz_url +
                              "', b'bench'); c.start(); l = c.get_lock(b'bench-tooz')\n"
                              "n = " +
                              std::to_string(opt.tooz_pairs) +
                              "; t0 = time.monotonic()\n"
                              "for _ in range(n):\n"
                              "    assert l.acquire(blocking=False); l.release()\n"
                              "print((time.monotonic() - t0) / n * 1e6)\"";
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  double us = 0;
  const bool read = std::fscanf(p, "%lf", &us) == 1;
  const int status = ::pclose(p);
  if (!read || status != 0) return std::nullopt;
  return us;
}

// ---- main ------------------------------------------------------------------

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: bench_postgres --socket CONNINFO [--tcp CONNINFO] [--iterations N] [--repetitions R]\n"
               "                      [--handoffs N] [--blocks B] [--hold-us N] [--tooz-url URL] [--tooz-pairs N]\n"
               "                      [--python PATH] [--json FILE]\n");
  std::exit(64);
}

options parse(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    auto number = [&]() {
      const std::string v = value();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n < 0 || n > 100'000'000) usage();
      return static_cast<int>(n);
    };
    if (arg == "--socket") {
      opt.transports.emplace_back("socket", value());
    } else if (arg == "--tcp") {
      opt.transports.emplace_back("tcp", value());
    } else if (arg == "--iterations") {
      opt.iterations = number();
    } else if (arg == "--repetitions") {
      opt.repetitions = number();
    } else if (arg == "--handoffs") {
      opt.handoffs = number();
    } else if (arg == "--blocks") {
      opt.blocks = number();
    } else if (arg == "--hold-us") {
      opt.hold_us = number();
    } else if (arg == "--timeout") {
      opt.timeout_s = number();
    } else if (arg == "--tooz-url") {
      opt.tooz_url = value();
    } else if (arg == "--tooz-pairs") {
      opt.tooz_pairs = number();
    } else if (arg == "--python") {
      opt.python = value();
    } else if (arg == "--json") {
      opt.json = value();
    } else {
      usage();
    }
  }
  if (opt.transports.empty() || opt.iterations < 1 || opt.repetitions < 1 || opt.blocks < 1 || opt.hold_us > 999'999 ||
      opt.tooz_pairs < 1) {
    usage();
  }
  return opt;
}

const char* transport_title(const std::string& label) { return label == "tcp" ? "TCP 127.0.0.1" : "unix socket"; }

}  // namespace

int main(int argc, char** argv) {
  const options opt = parse(argc, argv);
  // The handoff forks: first, while this process has no session of its own.
  std::vector<handoff_result> handoffs;
  if (opt.handoffs > 0) handoffs = run_handoff(opt);
  const std::vector<uncontended_result> uncontended = run_uncontended(opt);
  std::string server_version;
  {
    conn_ptr c = connect_or_die(opt.transports.front().second);
    PGresult* r = PQexec(c.get(), "SHOW server_version");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) server_version = PQgetvalue(r, 0, 0);
    PQclear(r);
    server_version.erase(std::remove_if(server_version.begin(), server_version.end(),
                                        [](char ch) { return ch == '"' || ch == '\\' || ch < ' '; }),
                         server_version.end());
  }
  std::optional<double> tooz;
  if (!opt.tooz_url.empty()) {
    tooz = tooz_pair_us(opt);
    if (!tooz) std::fprintf(stderr, "bench_postgres: Python tooz did not run (python3-tooz, python3-psycopg2?)\n");
  }

  std::printf("try_lock+unlock, us per pair (%d repetitions of %d pairs, interleaved):\n", opt.repetitions,
              opt.iterations);
  std::printf("  %-14s %10s %10s %10s %10s %8s %8s\n", "transport", "raw best", "ours best", "raw med", "ours med",
              "x best", "x med");
  for (const auto& u : uncontended) {
    const double rb = *std::min_element(u.raw.begin(), u.raw.end());
    const double lb = *std::min_element(u.library.begin(), u.library.end());
    const double rm = median(u.raw), lm = median(u.library);
    std::printf("  %-14s %10.1f %10.1f %10.1f %10.1f %7.2fx %7.2fx\n", transport_title(u.transport), rb, lb, rm, lm,
                lb / rb, lm / rm);
  }
  if (!handoffs.empty()) {
    std::printf("handoff to a waiter blocked in the server, us (%d blocks, hold 0..%d us):\n", opt.blocks, opt.hold_us);
    std::printf("  %-14s %-9s %7s %9s %9s %9s %9s\n", "transport", "variant", "count", "min", "median", "p90", "p99");
    for (const auto& h : handoffs) {
      for (int library = 0; library < 2; ++library) {
        const auto& v = library ? h.library : h.raw;
        if (v.empty()) continue;
        std::printf("  %-14s %-9s %7zu %9.1f %9.1f %9.1f %9.1f\n", transport_title(h.transport),
                    library ? "ours" : "raw", v.size(), *std::min_element(v.begin(), v.end()), median(v),
                    percentile(v, 0.9), percentile(v, 0.99));
      }
      if (!h.raw.empty() && !h.library.empty()) {
        std::printf("  %-14s ratio at the median %.2fx, p90 %.2fx, p99 %.2fx\n", "", median(h.library) / median(h.raw),
                    percentile(h.library, 0.9) / percentile(h.raw, 0.9),
                    percentile(h.library, 0.99) / percentile(h.raw, 0.99));
      }
    }
  }
  if (tooz) std::printf("Python tooz acquire(blocking=False)+release, TCP: %.1f us per pair\n", *tooz);

  if (!opt.json.empty()) {
    std::ofstream out(opt.json);
    out << "{\n  \"unit\": \"us\",\n  \"server_version\": \"" << server_version
        << "\",\n  \"libpq_version\": " << PQlibVersion() << ",\n  \"iterations\": " << opt.iterations
        << ",\n  \"repetitions\": " << opt.repetitions << ",\n  \"uncontended\": [\n";
    for (std::size_t i = 0; i < uncontended.size(); ++i) {
      const auto& u = uncontended[i];
      out << "    {\"transport\": \"" << u.transport << "\", \"raw\": " << json_list(u.raw)
          << ", \"library\": " << json_list(u.library) << "}" << (i + 1 < uncontended.size() ? "," : "") << "\n";
    }
    out << "  ],\n  \"handoff\": {\"handoffs\": " << opt.handoffs << ", \"blocks\": " << opt.blocks
        << ", \"hold_us\": " << opt.hold_us << ", \"transports\": [\n";
    for (std::size_t i = 0; i < handoffs.size(); ++i) {
      const auto& h = handoffs[i];
      out << "    {\"transport\": \"" << h.transport << "\", \"raw\": " << json_list(h.raw)
          << ", \"library\": " << json_list(h.library) << "}" << (i + 1 < handoffs.size() ? "," : "") << "\n";
    }
    out << "  ]},\n  \"tooz\": ";
    if (tooz) {
      out << "{\"pairs\": " << opt.tooz_pairs << ", \"us_per_pair\": " << *tooz << "}\n";
    } else {
      out << "null\n";
    }
    out << "}\n";
    if (!out) die("cannot write " + opt.json);
  }
  return 0;
}
