// Uncontended cost of the inter-process locks, next to the floor and a peer.
//
// The floor is what no file lock can beat: a raw F_OFD_SETLK lock + unlock
// pair on a descriptor opened once. Everything else is that pair plus its
// bookkeeping. Each benchmark uses its own lock file so that none sees
// another's lock.
#include <fasteners/interprocess_lock.hpp>
#include <fasteners/interprocess_locked.hpp>

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#if FASTENERS_BENCH_HAVE_BOOST
#include <boost/interprocess/sync/file_lock.hpp>
#endif
#if __has_include("posix/posix_lock_file.hpp")
#include "posix/posix_lock_file.hpp"  // the system-call table the tests inject failures through
#define FASTENERS_BENCH_HAVE_SYSCALL_TABLE 1
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;

fs::path& lock_dir() {
  static fs::path dir;
  return dir;
}

fs::path lock_file(const char* name) {
  fs::path path = lock_dir() / (std::string(name) + ".lock");
  std::ofstream{path, std::ios::app};  // exists, as Boost requires
  return path;
}

// An open descriptor, closed at scope exit.
class raw_file {
 public:
  explicit raw_file(const fs::path& path) : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666)) {
    if (fd_ < 0) throw std::system_error(errno, std::system_category(), "open " + path.string());
  }
  ~raw_file() { ::close(fd_); }
  raw_file(const raw_file&) = delete;
  raw_file& operator=(const raw_file&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

bool fcntl_lock(int fd, int command, short type) {
  struct flock request {};
  request.l_type = type;
  request.l_whence = SEEK_SET;
  return ::fcntl(fd, command, &request) == 0;
}

// The floor: a raw lock + unlock pair, exclusive or shared, on an open file.
void raw_pair(benchmark::State& state, int command, short type, const char* name) {
  raw_file file(lock_file(name));
  for (auto _ : state) {
    if (!fcntl_lock(file.fd(), command, type)) state.SkipWithError("lock failed");
    if (!fcntl_lock(file.fd(), command, F_UNLCK)) state.SkipWithError("unlock failed");
  }
}

void raw_ofd_exclusive(benchmark::State& state) { raw_pair(state, F_OFD_SETLK, F_WRLCK, "raw_ofd_x"); }
void raw_ofd_shared(benchmark::State& state) { raw_pair(state, F_OFD_SETLK, F_RDLCK, "raw_ofd_s"); }
void raw_classic_exclusive(benchmark::State& state) { raw_pair(state, F_SETLK, F_WRLCK, "raw_classic_x"); }
void raw_classic_shared(benchmark::State& state) { raw_pair(state, F_SETLK, F_RDLCK, "raw_classic_s"); }

void interprocess_lock_exclusive(benchmark::State& state) {
  fasteners::interprocess_lock lock(lock_file("ipl_x"));
  lock.lock();  // opens the file outside the timed loop
  lock.unlock();
  for (auto _ : state) {
    lock.lock();
    lock.unlock();
  }
}

void interprocess_lock_try_lock(benchmark::State& state) {
  fasteners::interprocess_lock lock(lock_file("ipl_try"));
  lock.lock();
  lock.unlock();
  for (auto _ : state) {
    if (!lock.try_lock()) state.SkipWithError("try_lock failed uncontended");
    lock.unlock();
  }
}

void interprocess_lock_try_lock_for(benchmark::State& state) {
  fasteners::interprocess_lock lock(lock_file("ipl_tryfor"));
  lock.lock();
  lock.unlock();
  for (auto _ : state) {
    if (!lock.try_lock_for(std::chrono::seconds(10))) state.SkipWithError("try_lock_for failed uncontended");
    lock.unlock();
  }
}

void rw_lock_exclusive(benchmark::State& state) {
  fasteners::interprocess_reader_writer_lock lock(lock_file("iprw_x"));
  lock.lock();
  lock.unlock();
  for (auto _ : state) {
    lock.lock();
    lock.unlock();
  }
}

void rw_lock_shared(benchmark::State& state) {
  fasteners::interprocess_reader_writer_lock lock(lock_file("iprw_s"));
  lock.lock_shared();
  lock.unlock_shared();
  for (auto _ : state) {
    lock.lock_shared();
    lock.unlock_shared();
  }
}

// The decorator: one call of a function that does nothing, lock held.
void interprocess_locked_call(benchmark::State& state) {
  int calls = 0;
  auto bump = fasteners::interprocess_locked(lock_file("decorated"), [&calls] { ++calls; });
  bump();
  for (auto _ : state) {
    bump();
  }
  benchmark::DoNotOptimize(calls);
}

// What the decorator saves the user from writing by hand.
void lock_guard_call(benchmark::State& state) {
  int calls = 0;
  fasteners::interprocess_lock lock(lock_file("guarded"));
  lock.lock();
  lock.unlock();
  for (auto _ : state) {
    std::lock_guard<fasteners::interprocess_lock> guard(lock);
    ++calls;
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(calls);
}

// The same pair while the calling thread holds `held` other locks: the cost
// must not depend on them (each file's record knows its own holders only).
void with_locks_held(benchmark::State& state, int held) {
  std::vector<std::unique_ptr<fasteners::interprocess_lock>> others;
  for (int i = 0; i < held; ++i) {
    others.push_back(std::make_unique<fasteners::interprocess_lock>(lock_file(("held_" + std::to_string(i)).c_str())));
    others.back()->lock();
  }
  fasteners::interprocess_lock lock(lock_file("held_subject"));
  for (auto _ : state) {
    lock.lock();
    lock.unlock();
  }
  for (auto& other : others) other->unlock();
}
void interprocess_lock_none_held(benchmark::State& state) { with_locks_held(state, 0); }
void interprocess_lock_900_held(benchmark::State& state) { with_locks_held(state, 900); }

// A new object's first lock: resolving the file's record (stat, table),
// opening the file, lock, unlock, closing.
void new_object_first_lock(benchmark::State& state, int held) {
  std::vector<std::unique_ptr<fasteners::interprocess_lock>> others;
  for (int i = 0; i < held; ++i) {
    others.push_back(std::make_unique<fasteners::interprocess_lock>(lock_file(("nheld_" + std::to_string(i)).c_str())));
    others.back()->lock();
  }
  const fs::path path = lock_file("new_object");
  for (auto _ : state) {
    fasteners::interprocess_lock lock(path);
    lock.lock();
    lock.unlock();
  }
  for (auto& other : others) other->unlock();
}
void new_object_none_held(benchmark::State& state) { new_object_first_lock(state, 0); }
void new_object_900_held(benchmark::State& state) { new_object_first_lock(state, 900); }

#if FASTENERS_BENCH_HAVE_SYSCALL_TABLE
// The library's own work, without the two system calls: fcntl is swapped for
// a function that succeeds at once. Library cost = this; floor + this is what
// lock+unlock would cost on a quiet machine.
int fcntl_that_succeeds(int, int, struct flock*) { return 0; }

template <class Lock, class Body>
void without_syscalls(benchmark::State& state, const char* name, Body body) {
  Lock lock(lock_file(name));
  body(lock);  // opens the file with the real calls
  auto& table = fasteners::detail::posix::syscall_table();
  const auto real = table.fcntl_lock;
  table.fcntl_lock = &fcntl_that_succeeds;
  for (auto _ : state) body(lock);
  table.fcntl_lock = real;
}

void library_only_exclusive(benchmark::State& state) {
  without_syscalls<fasteners::interprocess_lock>(state, "library_x", [](auto& lock) {
    lock.lock();
    lock.unlock();
  });
}

void library_only_shared(benchmark::State& state) {
  without_syscalls<fasteners::interprocess_reader_writer_lock>(state, "library_s", [](auto& lock) {
    lock.lock_shared();
    lock.unlock_shared();
  });
}
#endif

#if FASTENERS_BENCH_HAVE_BOOST
void boost_file_lock_exclusive(benchmark::State& state) {
  boost::interprocess::file_lock lock(lock_file("boost_x").c_str());
  for (auto _ : state) {
    lock.lock();
    lock.unlock();
  }
}

void boost_file_lock_shared(benchmark::State& state) {
  boost::interprocess::file_lock lock(lock_file("boost_s").c_str());
  for (auto _ : state) {
    lock.lock_sharable();
    lock.unlock_sharable();
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  std::string pattern = (fs::temp_directory_path() / "fasteners-bench-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  lock_dir() = pattern;

  // Names: "<what>/<exclusive|shared>"; bench/report.py relies on them.
  const std::pair<const char*, void (*)(benchmark::State&)> benchmarks[] = {
    {"raw_ofd_pair/exclusive", raw_ofd_exclusive},
    {"raw_ofd_pair/shared", raw_ofd_shared},
    {"raw_classic_pair/exclusive", raw_classic_exclusive},
    {"raw_classic_pair/shared", raw_classic_shared},
    {"interprocess_lock/exclusive", interprocess_lock_exclusive},
    {"interprocess_lock/try_lock", interprocess_lock_try_lock},
    {"interprocess_lock/try_lock_for", interprocess_lock_try_lock_for},
    {"interprocess_reader_writer_lock/exclusive", rw_lock_exclusive},
    {"interprocess_reader_writer_lock/shared", rw_lock_shared},
    {"interprocess_locked/call", interprocess_locked_call},
    {"lock_guard/call", lock_guard_call},
    {"held_locks/none", interprocess_lock_none_held},
    {"held_locks/900", interprocess_lock_900_held},
    {"new_object/none_held", new_object_none_held},
    {"new_object/900_held", new_object_900_held},
#if FASTENERS_BENCH_HAVE_SYSCALL_TABLE
    {"library_only/exclusive", library_only_exclusive},
    {"library_only/shared", library_only_shared},
#endif
#if FASTENERS_BENCH_HAVE_BOOST
    {"boost_file_lock/exclusive", boost_file_lock_exclusive},
    {"boost_file_lock/shared", boost_file_lock_shared},
#endif
  };
  for (const auto& [name, fn] : benchmarks) {
    // On a shared machine other work only ever adds time, so the best of the
    // repetitions is the steadiest estimate of the cost itself.
    benchmark::RegisterBenchmark(name, fn)->ComputeStatistics(
        "min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });
  }

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  std::error_code ignored;
  fs::remove_all(lock_dir(), ignored);
  return 0;
}
