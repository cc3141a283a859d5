// reader_writer_lock against the usual reader-writer locks.
//
//   bench_reader_writer_lock --benchmark_repetitions=7 --benchmark_enable_random_interleaving=true
//
//   bench_reader_writer_lock --matrix 7 20 matrix.json
//   bench_reader_writer_lock --matrix 7 20 - --cells 4x100,8x10 --locks fasteners,std::shared_mutex
//
// The matrix (--matrix ROUNDS RUN_MS [OUT]): 1, 2, 4 and 8 threads, each
// doing operations of which 0, 1, 10, 50 or 100 % are writes, spread evenly
// (not at random, so that every lock sees the same sequence). An operation
// is: lock, touch one shared counter, unlock. Times are wall time per
// operation over all threads (the inverse of the throughput). Without
// --matrix: the uncontended read and write pairs, with Google Benchmark.
//
// Peers that were not found at build time (absl::Mutex, boost::shared_mutex)
// are left out. bench/run runs the repetitions interleaved at random and
// bench/report.py turns them into docs/PERFORMANCE.md.
#include <fasteners/reader_writer_lock.hpp>

#include <benchmark/benchmark.h>

#if !defined(_WIN32)
#include <pthread.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(FASTENERS_BENCH_HAVE_ABSL)
#include <absl/synchronization/mutex.h>
#endif
#if defined(FASTENERS_BENCH_HAVE_BOOST_THREAD)
#include <boost/thread/shared_mutex.hpp>
#endif

namespace {

#if !defined(_WIN32)
// The POSIX rwlock with its defaults (glibc: readers preferred), without the
// standard wrapper.
class posix_rwlock {
 public:
  posix_rwlock() { pthread_rwlock_init(&lock_, nullptr); }
  ~posix_rwlock() { pthread_rwlock_destroy(&lock_); }
  posix_rwlock(const posix_rwlock&) = delete;
  posix_rwlock& operator=(const posix_rwlock&) = delete;
  void lock() { pthread_rwlock_wrlock(&lock_); }
  void unlock() { pthread_rwlock_unlock(&lock_); }
  void lock_shared() { pthread_rwlock_rdlock(&lock_); }
  void unlock_shared() { pthread_rwlock_unlock(&lock_); }

 private:
  pthread_rwlock_t lock_;
};
#endif

// Read and write operations under one spelling.
template <class L>
struct ops {
  static void read_lock(L& l) { l.lock_shared(); }
  static void read_unlock(L& l) { l.unlock_shared(); }
  static void write_lock(L& l) { l.lock(); }
  static void write_unlock(L& l) { l.unlock(); }
};
#if defined(FASTENERS_BENCH_HAVE_ABSL)
template <>
struct ops<absl::Mutex> {
  static void read_lock(absl::Mutex& l) { l.ReaderLock(); }
  static void read_unlock(absl::Mutex& l) { l.ReaderUnlock(); }
  static void write_lock(absl::Mutex& l) { l.Lock(); }
  static void write_unlock(absl::Mutex& l) { l.Unlock(); }
};
#endif

// What the critical sections touch, so that the compiler keeps them. Readers
// pass it to DoNotOptimize as const: the non-const overload tells the compiler
// the value may change, so it may store it back, and that store would make
// every reader write one shared cache line.
struct alignas(128) guarded_data {
  std::uint64_t value = 0;
};

template <class L>
void uncontended_read(benchmark::State& state) {
  L lock;
  guarded_data data;
  for (auto _ : state) {
    ops<L>::read_lock(lock);
    benchmark::DoNotOptimize(std::as_const(data).value);
    ops<L>::read_unlock(lock);
  }
}

template <class L>
void uncontended_write(benchmark::State& state) {
  L lock;
  guarded_data data;
  for (auto _ : state) {
    ops<L>::write_lock(lock);
    ++data.value;
    benchmark::ClobberMemory();
    ops<L>::write_unlock(lock);
  }
}

// --- The matrix ----------------------------------------------------------------
//
// Google Benchmark times each thread on its own and averages; with more
// threads than cores, threads that run one after another in separate time
// slices then look faster than they are. So the matrix has its own harness:
// T threads start together, each does a fixed number of operations, and the
// time is from the start to the moment the last one finishes, divided by all
// the operations done. A lock that starves some thread pays for it here.

struct alignas(128) padded_time {
  std::chrono::steady_clock::time_point value;
};

template <class L>
struct matrix_cell {
  static double run(int threads, std::uint32_t write_percent, std::uint64_t ops_per_thread) {
    alignas(128) static L lock;
    static guarded_data data;
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<padded_time> finished(static_cast<std::size_t>(threads));
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        // Threads start at different points of the pattern, so that their
        // writes do not come in step.
        std::uint32_t credit = static_cast<std::uint32_t>(t) * 37 % 100;
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        for (std::uint64_t i = 0; i < ops_per_thread; ++i) {
          credit += write_percent;
          if (credit >= 100) {
            credit -= 100;
            ops<L>::write_lock(lock);
            ++data.value;
            benchmark::ClobberMemory();
            ops<L>::write_unlock(lock);
          } else {
            ops<L>::read_lock(lock);
            benchmark::DoNotOptimize(std::as_const(data).value);
            ops<L>::read_unlock(lock);
          }
        }
        finished[static_cast<std::size_t>(t)].value = std::chrono::steady_clock::now();
      });
    }
    while (ready.load() != threads) std::this_thread::yield();
    const auto start = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    for (auto& w : workers) w.join();
    auto last = start;
    for (const auto& f : finished) last = std::max(last, f.value);
    const double ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(last - start).count());
    return ns / static_cast<double>(ops_per_thread * static_cast<std::uint64_t>(threads));
  }
};

struct matrix_entry {
  std::string lock;
  int threads;
  std::uint32_t writes;
  double (*run)(int, std::uint32_t, std::uint64_t);
  std::uint64_t ops_per_thread = 0;
  std::vector<double> ns_per_op;
};

template <class L>
void add_matrix(std::vector<matrix_entry>& entries, const std::string& name) {
  for (std::uint32_t writes : {0u, 1u, 10u, 50u, 100u}) {
    for (int threads : {1, 2, 4, 8})
      entries.push_back(matrix_entry{name, threads, writes, &matrix_cell<L>::run, 0, {}});
  }
}

// Keeps only the cells named in `cells` ("4x100,8x10": threads x write
// percent; empty: all) of the locks whose names contain one of the
// comma-separated `locks` (empty: all).
std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= list.size() && !list.empty()) {
    const std::size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) parts.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return parts;
}

void filter_matrix(std::vector<matrix_entry>& entries, const std::string& cells, const std::string& locks) {
  const std::vector<std::string> wanted_cells = split(cells);
  const std::vector<std::string> wanted_locks = split(locks);
  auto keep = [&](const matrix_entry& e) {
    const std::string cell = std::to_string(e.threads) + "x" + std::to_string(e.writes);
    const bool cell_ok =
        wanted_cells.empty() || std::find(wanted_cells.begin(), wanted_cells.end(), cell) != wanted_cells.end();
    const bool lock_ok =
        wanted_locks.empty() || std::any_of(wanted_locks.begin(), wanted_locks.end(),
                                            [&](const std::string& l) { return e.lock.find(l) != std::string::npos; });
    return cell_ok && lock_ok;
  };
  entries.erase(std::remove_if(entries.begin(), entries.end(), [&](const matrix_entry& e) { return !keep(e); }),
                entries.end());
}

// Every cell of every lock, `rounds` times, in a fresh random order each
// round; each run lasts about `run_ms`. Writes JSON to `out_path` (or stdout).
// The best repetition: other work on a shared machine only ever adds time.
double best(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

template <class L>
void register_all(std::vector<matrix_entry>& entries, const std::string& name) {
  add_matrix<L>(entries, name);
  benchmark::RegisterBenchmark(("uncontended_read/" + name).c_str(), uncontended_read<L>)
      ->ComputeStatistics("min", best);
  benchmark::RegisterBenchmark(("uncontended_write/" + name).c_str(), uncontended_write<L>)
      ->ComputeStatistics("min", best);
}

std::vector<matrix_entry> g_matrix;

int run_matrix(int rounds, double run_ms, const char* out_path) {
  std::vector<matrix_entry>& entries = g_matrix;
  // Calibrate: a short probe tells how many operations make a run of run_ms.
  for (matrix_entry& e : entries) {
    const double ns = e.run(e.threads, e.writes, 2000);
    const double total = run_ms * 1e6 / std::max(ns, 0.1);
    e.ops_per_thread = std::max<std::uint64_t>(200, static_cast<std::uint64_t>(total / e.threads));
  }
  std::vector<std::size_t> order(entries.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937 random(12345);
  for (int round = 0; round < rounds; ++round) {
    std::shuffle(order.begin(), order.end(), random);
    for (std::size_t i : order) {
      matrix_entry& e = entries[i];
      e.ns_per_op.push_back(e.run(e.threads, e.writes, e.ops_per_thread));
    }
    std::fprintf(stderr, "matrix: round %d of %d done\n", round + 1, rounds);
  }
  const bool to_stdout = out_path == nullptr || std::string(out_path) == "-";
  std::FILE* out = to_stdout ? stdout : std::fopen(out_path, "w");
  if (out == nullptr) {
    std::perror(out_path);
    return 1;
  }
  std::fprintf(out, "{\n  \"rounds\": %d,\n  \"run_ms\": %.1f,\n  \"matrix\": [\n", rounds, run_ms);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const matrix_entry& e = entries[i];
    std::fprintf(out, "    {\"lock\": \"%s\", \"threads\": %d, \"writes\": %u, \"ops_per_thread\": %llu, ",
                 e.lock.c_str(), e.threads, e.writes, static_cast<unsigned long long>(e.ops_per_thread));
    std::fprintf(out, "\"best_ns\": %.3f, \"median_ns\": %.3f, \"runs_ns\": [", best(e.ns_per_op), median(e.ns_per_op));
    for (std::size_t j = 0; j < e.ns_per_op.size(); ++j)
      std::fprintf(out, "%s%.3f", j != 0 ? ", " : "", e.ns_per_op[j]);
    std::fprintf(out, "]}%s\n", i + 1 < entries.size() ? "," : "");
  }
  std::fprintf(out, "  ]\n}\n");
  if (!to_stdout) std::fclose(out);
  return 0;
}

}  // namespace

// `--matrix ROUNDS RUN_MS [OUT.json|-] [--cells TxW,...] [--locks NAME,...]`
// runs the matrix instead of the Google Benchmark cases.
int main(int argc, char** argv) {
  if (argc >= 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::printf(
        "usage: %s --matrix ROUNDS RUN_MS [OUT.json|-] [--cells TxW,...] [--locks NAME,...]\n"
        "         the threads x writes matrix; --cells 4x100,8x10 keeps those cells (threads x write %%),\n"
        "         --locks fasteners,std keeps the locks whose names contain one of the words\n"
        "       %s [Google Benchmark options]   the uncontended read and write pairs\n",
        argv[0], argv[0]);
    return 0;
  }
  register_all<fasteners::reader_writer_lock>(g_matrix, "fasteners::reader_writer_lock");
  register_all<std::shared_mutex>(g_matrix, "std::shared_mutex");
#if !defined(_WIN32)
  register_all<posix_rwlock>(g_matrix, "pthread_rwlock");
#endif
#if defined(FASTENERS_BENCH_HAVE_ABSL)
  register_all<absl::Mutex>(g_matrix, "absl::Mutex");
#endif
#if defined(FASTENERS_BENCH_HAVE_BOOST_THREAD)
  register_all<boost::shared_mutex>(g_matrix, "boost::shared_mutex");
#endif
  if (argc >= 4 && std::string(argv[1]) == "--matrix") {
    const char* out_path = nullptr;
    std::string cells, locks;
    for (int i = 4; i < argc; ++i) {
      const std::string arg = argv[i];
      if ((arg == "--cells" || arg == "--locks") && i + 1 < argc) {
        (arg == "--cells" ? cells : locks) = argv[++i];
      } else if (i == 4 && arg.rfind("--", 0) != 0) {
        out_path = argv[i];
      } else {
        std::fprintf(stderr, "unknown argument: %s (see --help)\n", argv[i]);
        return 2;
      }
    }
    filter_matrix(g_matrix, cells, locks);
    return run_matrix(std::atoi(argv[2]), std::atof(argv[3]), out_path);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
