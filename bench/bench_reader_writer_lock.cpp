// reader_writer_lock against the usual reader-writer locks and a plain mutex.
//
//   bench_reader_writer_lock --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Peers that were not found at build time (absl::Mutex, boost::shared_mutex)
// are left out. The results table lives in docs/PERFORMANCE.md.
#include <fasteners/reader_writer_lock.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>

#if defined(FASTENERS_BENCH_HAVE_ABSL)
#include <absl/synchronization/mutex.h>
#endif
#if defined(FASTENERS_BENCH_HAVE_BOOST_THREAD)
#include <boost/thread/shared_mutex.hpp>
#endif

namespace {

// Read and write operations under one spelling.
template <class L>
struct ops {
  static void read_lock(L& l) { l.lock_shared(); }
  static void read_unlock(L& l) { l.unlock_shared(); }
  static void write_lock(L& l) { l.lock(); }
  static void write_unlock(L& l) { l.unlock(); }
};
// A plain mutex: readers take it exclusively.
template <>
struct ops<std::mutex> {
  static void read_lock(std::mutex& l) { l.lock(); }
  static void read_unlock(std::mutex& l) { l.unlock(); }
  static void write_lock(std::mutex& l) { l.lock(); }
  static void write_unlock(std::mutex& l) { l.unlock(); }
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

template <class L>
struct shared_state {
  L lock;
  guarded_data data;
};

// Every thread reads one lock as fast as it can: the case a reader-writer
// lock is for. Reported as real time per read lock+unlock per thread; look at
// items_per_second for the total.
template <class L>
void all_readers(benchmark::State& state) {
  static shared_state<L> shared;
  for (auto _ : state) {
    ops<L>::read_lock(shared.lock);
    benchmark::DoNotOptimize(std::as_const(shared.data).value);
    ops<L>::read_unlock(shared.lock);
  }
  state.SetItemsProcessed(state.iterations());
}

// Nine reads to one write.
template <class L>
void mixed_90_10(benchmark::State& state) {
  static shared_state<L> shared;
  std::uint32_t i = 0;
  for (auto _ : state) {
    if (++i % 10 == 0) {
      ops<L>::write_lock(shared.lock);
      ++shared.data.value;
      benchmark::ClobberMemory();
      ops<L>::write_unlock(shared.lock);
    } else {
      ops<L>::read_lock(shared.lock);
      benchmark::DoNotOptimize(std::as_const(shared.data).value);
      ops<L>::read_unlock(shared.lock);
    }
  }
  state.SetItemsProcessed(state.iterations());
}

template <class L>
void register_all(const std::string& name) {
  benchmark::RegisterBenchmark(("uncontended_read/" + name).c_str(), uncontended_read<L>);
  benchmark::RegisterBenchmark(("uncontended_write/" + name).c_str(), uncontended_write<L>);
  benchmark::RegisterBenchmark(("all_readers/" + name).c_str(), all_readers<L>)->Threads(1)->Threads(2)->UseRealTime();
  benchmark::RegisterBenchmark(("mixed_90_10/" + name).c_str(), mixed_90_10<L>)->Threads(1)->Threads(2)->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  register_all<fasteners::reader_writer_lock>("fasteners::reader_writer_lock");
  register_all<std::shared_mutex>("std::shared_mutex");
  register_all<std::mutex>("std::mutex");
#if defined(FASTENERS_BENCH_HAVE_ABSL)
  register_all<absl::Mutex>("absl::Mutex");
#endif
#if defined(FASTENERS_BENCH_HAVE_BOOST_THREAD)
  register_all<boost::shared_mutex>("boost::shared_mutex");
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
