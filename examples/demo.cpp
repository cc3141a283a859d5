// The main job: several processes, each with several threads, take turns on
// one counter file under an interprocess_lock, while a writer process and
// reader processes share a ledger under an interprocess_reader_writer_lock.
// At the end the counter must equal the number of increments: nothing lost.
//
//   demo [DIRECTORY]        run it (in a fresh temporary directory by default)
#include <fasteners/interprocess_lock.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifdef _WIN32
#include <process.h>
#else
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
extern char** environ;
#endif

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr int counter_processes = 4;
constexpr int threads_per_process = 3;
constexpr int increments_per_thread = 200;
constexpr int reader_processes = 2;
constexpr int ledger_updates = 60;

long read_number(const fs::path& path) {
  std::ifstream in(path);
  long value = 0;
  in >> value;
  return value;
}

// The ledger holds two lines that must always agree: an update writes the
// first, pauses, then writes the second. Only the write lock keeps a reader
// from seeing them disagree.
void write_ledger_line(const fs::path& path, int line, long value) {
  std::fstream f(path, std::ios::in | std::ios::out);
  f.seekp(line * 16);
  char text[17];
  std::snprintf(text, sizeof text, "%15ld\n", value);
  f << text;
}

int counter_worker(int id, const fs::path& dir) {
  // All threads of this process share one lock object: it is thread-safe.
  fasteners::interprocess_lock lock(dir / "counter.lock");
  std::atomic<long long> longest_wait_us{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_per_process; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < increments_per_thread; ++i) {
        const auto asked = clock_type::now();
        std::lock_guard<fasteners::interprocess_lock> guard(lock);
        const long long waited =
            std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - asked).count();
        long long seen = longest_wait_us.load();
        while (waited > seen && !longest_wait_us.compare_exchange_weak(seen, waited)) {
        }
        const long value = read_number(dir / "counter");
        std::ofstream(dir / "counter", std::ios::trunc) << value + 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  std::ostringstream line;
  line << "  counter worker " << id << ": " << threads_per_process << " threads x " << increments_per_thread
       << " increments, longest wait " << static_cast<double>(longest_wait_us.load()) / 1000.0 << " ms\n";
  std::cout << line.str() << std::flush;
  return 0;
}

int ledger_writer(const fs::path& dir) {
  fasteners::interprocess_reader_writer_lock rw(dir / "ledger.lock");
  for (long update = 1; update <= ledger_updates; ++update) {
    auto guard = rw.write_lock();
    write_ledger_line(dir / "ledger", 0, update);
    std::this_thread::sleep_for(2ms);  // a reader that got in now would see the lines disagree
    write_ledger_line(dir / "ledger", 1, update);
  }
  std::cout << "  ledger writer: " << ledger_updates << " updates under the write lock\n" << std::flush;
  return 0;
}

int ledger_reader(int id, const fs::path& dir) {
  fasteners::interprocess_reader_writer_lock rw(dir / "ledger.lock");
  long reads = 0, torn = 0, last = 0;
  while (last < ledger_updates) {
    {
      auto guard = rw.read_lock();
      std::ifstream in(dir / "ledger");
      long first = 0, second = 0;
      in >> first >> second;
      ++reads;
      if (first != second) ++torn;
      last = first;
    }
    std::this_thread::sleep_for(1ms);
  }
  std::cout << "  ledger reader " << id << ": " << reads << " reads, " << torn << " torn\n" << std::flush;
  return torn == 0 ? 0 : 1;
}

// Starts this program again as a worker and returns a handle to wait on.
long spawn_self(const char* self, const std::vector<std::string>& args) {
  std::vector<std::string> all{self};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
#ifdef _WIN32
  return static_cast<long>(_spawnv(_P_NOWAIT, self, argv.data()));
#else
  pid_t pid = 0;
  if (posix_spawn(&pid, self, nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return pid;
#endif
}

int wait_for(long handle) {
#ifdef _WIN32
  int status = 0;
  _cwait(&status, static_cast<intptr_t>(handle), 0);
  return status;
#else
  int status = 0;
  waitpid(static_cast<pid_t>(handle), &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 4 && std::string(argv[1]) == "--counter-worker") return counter_worker(std::atoi(argv[2]), argv[3]);
    if (argc == 3 && std::string(argv[1]) == "--ledger-writer") return ledger_writer(argv[2]);
    if (argc == 4 && std::string(argv[1]) == "--ledger-reader") return ledger_reader(std::atoi(argv[2]), argv[3]);
    if (argc > 2) {
      std::cerr << "usage: demo [DIRECTORY]\n";
      return 64;
    }

    const bool own_dir = argc < 2;
    const fs::path dir =
        own_dir ? fs::temp_directory_path() / ("fasteners-demo-" + std::to_string(std::rand()) +
                                               std::to_string(clock_type::now().time_since_epoch().count()))
                : fs::path(argv[1]);
    fs::create_directories(dir);
    std::ofstream(dir / "counter", std::ios::trunc) << 0;
    std::ofstream(dir / "ledger", std::ios::trunc) << std::string(32, ' ');
    write_ledger_line(dir / "ledger", 0, 0);
    write_ledger_line(dir / "ledger", 1, 0);

    std::cout << "fasteners demo in " << dir.string() << "\n"
              << counter_processes << " processes x " << threads_per_process
              << " threads increment one counter file under interprocess_lock;\n"
              << "1 writer and " << reader_processes
              << " reader processes share a ledger under interprocess_reader_writer_lock.\n"
              << std::flush;
    const auto start = clock_type::now();
    std::vector<long> children;
    for (int p = 0; p < counter_processes; ++p) {
      children.push_back(spawn_self(argv[0], {"--counter-worker", std::to_string(p), dir.string()}));
    }
    children.push_back(spawn_self(argv[0], {"--ledger-writer", dir.string()}));
    for (int r = 0; r < reader_processes; ++r) {
      children.push_back(spawn_self(argv[0], {"--ledger-reader", std::to_string(r), dir.string()}));
    }
    int failures = 0;
    for (long child : children) {
      if (child < 0 || wait_for(child) != 0) ++failures;
    }
    const auto elapsed = std::chrono::duration<double>(clock_type::now() - start).count();

    const long expected = long{counter_processes} * threads_per_process * increments_per_thread;
    const long counted = read_number(dir / "counter");
    std::cout << "counter = " << counted << ", expected " << expected << " ("
              << (counted == expected ? "nothing lost" : "UPDATES LOST") << ")\n"
              << "processes failed: " << failures << "; took " << elapsed << " s\n";
    if (own_dir) fs::remove_all(dir);
    return counted == expected && failures == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "demo: " << e.what() << "\n";
    return 2;
  }
}
