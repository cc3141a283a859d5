// postgres_lock against raw libpq on a kept connection, and Python tooz.
//   bench_postgres UNIX_CONNINFO TCP_CONNINFO [ITERATIONS] [TOOZ_URL]
// Prints one line per figure: the median of 5 runs of ITERATIONS
// try_lock+unlock pairs, in microseconds per pair, and the ratios.
#include <fasteners/postgres_lock.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

double median_us(int iterations, const std::function<void()>& pair) {
  std::vector<double> runs;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = clock_type::now();
    for (int i = 0; i < iterations; ++i) pair();
    runs.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count() / iterations);
  }
  std::sort(runs.begin(), runs.end());
  return runs[2];
}

double raw_pair(const std::string& conninfo, int iterations) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::fprintf(stderr, "bench_postgres: %s", PQerrorMessage(c));
    std::exit(1);
  }
  PQclear(PQprepare(c, "t", "SELECT pg_try_advisory_lock($1)", 1, nullptr));
  PQclear(PQprepare(c, "u", "SELECT pg_advisory_unlock($1)", 1, nullptr));
  const std::string key = std::to_string(fasteners::postgres_hash64_key("bench-raw"));
  const char* values[] = {key.c_str()};
  const double us = median_us(iterations, [&] {
    PQclear(PQexecPrepared(c, "t", 1, values, nullptr, nullptr, 0));
    PQclear(PQexecPrepared(c, "u", 1, values, nullptr, nullptr, 0));
  });
  PQfinish(c);
  return us;
}

double library_pair(const std::string& conninfo, int iterations) {
  fasteners::postgres_lock lock("bench-lib", fasteners::postgres_options{conninfo});
  lock.lock();  // connect and prepare outside the measurement
  lock.unlock();
  return median_us(iterations, [&] {
    if (lock.try_lock()) lock.unlock();
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_postgres UNIX_CONNINFO TCP_CONNINFO [ITERATIONS] [TOOZ_URL]\n");
    return 64;
  }
  const int iterations = argc > 3 ? std::atoi(argv[3]) : 2000;
  for (int t = 0; t < 2; ++t) {
    const char* transport = t == 0 ? "unix socket" : "TCP 127.0.0.1";
    const double raw = raw_pair(argv[1 + t], iterations);
    const double lib = library_pair(argv[1 + t], iterations);
    std::printf("try_lock+unlock, %s: postgres_lock %.1f us, raw libpq prepared %.1f us, ratio %.2fx\n", transport, lib,
                raw, lib / raw);
  }
  if (argc > 4) {
    // tooz opens a connection per acquisition; a few dozen are enough.
    const std::string command =
        std::string(std::getenv("BENCH_PYTHON") ? std::getenv("BENCH_PYTHON") : "/usr/bin/python3") +
        " -c \"import time; from tooz import coordination\n"
        "c = coordination.get_coordinator('" +
        argv[4] +
        "', b'bench'); c.start(); l = c.get_lock(b'bench-tooz')\n"
        "n = 50; t0 = time.monotonic()\n"
        "for _ in range(n):\n    l.acquire(blocking=False); l.release()\n"
        "print((time.monotonic() - t0) / n * 1e6)\"";
    FILE* p = ::popen(command.c_str(), "r");
    double tooz_us = 0;
    if (p != nullptr && std::fscanf(p, "%lf", &tooz_us) == 1) {
      const double lib = library_pair(argv[2], iterations);
      std::printf("acquire+release, TCP: Python tooz %.1f us, postgres_lock %.1f us: tooz %.0fx slower\n", tooz_us, lib,
                  tooz_us / lib);
    }
    if (p != nullptr) ::pclose(p);
  }
  return 0;
}
