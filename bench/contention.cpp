// contention: N contenders hammer one lock for a fixed time.
//
// Contenders are processes (each with its own interprocess_lock, the usual
// cross-process case), the same with raw F_OFD_SETLKW (the floor), or threads
// of one process sharing one interprocess_lock object or each owning one on
// the same file. Each loops: read the clock, lock, read the clock, touch a
// shared counter, unlock. Reported per mode and N: acquisitions per second,
// each contender's share of them (1.0 = its fair 1/N), Jain's fairness index,
// starved contenders (under a tenth of a fair share), and the wait for the
// lock (median, p99, max, max/median) over all acquisitions.
//
//   contention [--n 2,4,8,16,32] [--seconds S] [--modes m1,m2,...] [--hold-ns N]
//              [--think-ns N] [--json FILE]
#include <fasteners/interprocess_lock.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;

std::uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "contention[%d]: %s\n", static_cast<int>(::getpid()), what.c_str());
  std::fflush(stderr);
  ::_exit(1);
}

void spin_for(std::uint64_t ns) {
  if (ns == 0) return;
  const std::uint64_t until = monotonic_ns() + ns;
  while (monotonic_ns() < until) {
  }
}

// Log-linear histogram of waits in ns: exact below 64 ns, then 32 buckets per
// power of two (about 3% resolution).
constexpr int buckets = 64 + 58 * 32;

int bucket_of(std::uint64_t ns) {
  if (ns < 64) return static_cast<int>(ns);
  const int e = 63 - __builtin_clzll(ns);
  return 64 + (e - 6) * 32 + static_cast<int>((ns >> (e - 5)) & 31);
}

double bucket_middle(int i) {
  if (i < 64) return i;
  const int e = (i - 64) / 32 + 6;
  const double lower = std::ldexp(32 + (i - 64) % 32, e - 5);
  return lower + std::ldexp(0.5, e - 5);
}

struct alignas(64) contender_stats {
  std::uint64_t acquisitions;
  std::uint64_t max_wait_ns;
  std::uint64_t waits[buckets];
};

constexpr int max_contenders = 256;

// Lives in MAP_SHARED memory so that forked contenders report into it.
struct arena {
  alignas(64) std::atomic<int> inside;  // >1 means two contenders held the lock at once
  std::atomic<std::uint64_t> violations;
  std::uint64_t deadline_ns;
  alignas(64) std::uint64_t counter;  // touched under the lock
  contender_stats contenders[max_contenders];
};

struct options {
  std::vector<int> counts{2, 4, 8, 16, 32};
  double seconds = 1.5;
  std::vector<std::string> modes{"processes", "raw_ofd_processes", "threads_shared", "threads_own"};
  std::uint64_t hold_ns = 0;
  std::uint64_t think_ns = 0;
  std::string json;
};

// One way of taking the lock.
class contender_lock {
 public:
  virtual ~contender_lock() = default;
  virtual void lock() = 0;
  virtual void unlock() = 0;
};

class fasteners_lock final : public contender_lock {
 public:
  explicit fasteners_lock(fasteners::interprocess_lock& lock) : lock_(lock) {}
  void lock() override { lock_.lock(); }
  void unlock() override { lock_.unlock(); }

 private:
  fasteners::interprocess_lock& lock_;
};

class raw_ofd_lock final : public contender_lock {
 public:
  explicit raw_ofd_lock(const fs::path& path) : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666)) {
    if (fd_ < 0) die("open " + path.string() + ": " + std::strerror(errno));
  }
  ~raw_ofd_lock() override { ::close(fd_); }
  void lock() override { request(F_OFD_SETLKW, F_WRLCK); }
  void unlock() override { request(F_OFD_SETLK, F_UNLCK); }

 private:
  void request(int command, short type) {
    struct flock lk {};
    lk.l_type = type;
    lk.l_whence = SEEK_SET;
    while (::fcntl(fd_, command, &lk) != 0) {
      if (errno != EINTR) die(std::string("fcntl: ") + std::strerror(errno));
    }
  }
  int fd_;
};

void wait_for_go(int go_fd) {
  char c;
  while (::read(go_fd, &c, 1) < 0 && errno == EINTR) {
  }
}

void hammer(arena& a, contender_stats& mine, contender_lock& lock, const options& opt) {
  const std::uint64_t deadline = a.deadline_ns;
  for (;;) {
    const std::uint64_t asked = monotonic_ns();
    lock.lock();
    const std::uint64_t got = monotonic_ns();
    const std::uint64_t wait = got - asked;
    ++mine.waits[bucket_of(wait)];
    mine.max_wait_ns = std::max(mine.max_wait_ns, wait);
    if (got >= deadline) {
      lock.unlock();
      break;
    }
    if (a.inside.fetch_add(1, std::memory_order_acquire) != 0) a.violations.fetch_add(1);
    ++a.counter;
    spin_for(opt.hold_ns);
    a.inside.fetch_sub(1, std::memory_order_release);
    ++mine.acquisitions;
    lock.unlock();
    spin_for(opt.think_ns);
  }
}

struct result {
  std::string mode;
  int n = 0;
  double per_second = 0;
  std::uint64_t acquisitions = 0;
  std::vector<double> shares;  // each contender's share times n (1.0 is fair)
  double min_share = 0, max_share = 0, jain = 0;
  int starved = 0;
  double wait_median_us = 0, wait_p99_us = 0, wait_max_us = 0;
  std::uint64_t violations = 0;
};

result run(const std::string& mode, int n, const options& opt, const fs::path& lock_path) {
  const std::size_t bytes = sizeof(arena);
  void* mapped = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) die("mmap failed");
  arena& a = *new (mapped) arena{};

  int go[2];
  int ready[2];
  if (::pipe(go) != 0 || ::pipe(ready) != 0) die("pipe failed");

  std::vector<pid_t> children;
  std::vector<std::thread> threads;
  std::unique_ptr<fasteners::interprocess_lock> shared_object;
  const bool processes = mode == "processes" || mode == "raw_ofd_processes";
  if (processes) {
    for (int i = 0; i < n; ++i) {
      std::fflush(nullptr);
      const pid_t pid = ::fork();
      if (pid < 0) die("fork failed");
      if (pid == 0) {
        ::close(go[1]);
        ::close(ready[0]);
        std::unique_ptr<fasteners::interprocess_lock> object;
        std::unique_ptr<contender_lock> lock;
        if (mode == "processes") {
          object = std::make_unique<fasteners::interprocess_lock>(lock_path);
          if (object->try_lock()) object->unlock();  // opens the file now
          lock = std::make_unique<fasteners_lock>(*object);
        } else {
          lock = std::make_unique<raw_ofd_lock>(lock_path);
        }
        if (::write(ready[1], "r", 1) != 1) die("ready pipe");
        wait_for_go(go[0]);
        try {
          hammer(a, a.contenders[i], *lock, opt);
        } catch (const std::exception& e) {
          die(e.what());
        }
        lock.reset();
        object.reset();
        ::_exit(0);
      }
      children.push_back(pid);
    }
  } else {
    if (mode == "threads_shared") {
      shared_object = std::make_unique<fasteners::interprocess_lock>(lock_path);
      if (shared_object->try_lock()) shared_object->unlock();
    }
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        std::unique_ptr<fasteners::interprocess_lock> own;
        fasteners::interprocess_lock* object = shared_object.get();
        if (!object) {
          own = std::make_unique<fasteners::interprocess_lock>(lock_path);
          if (own->try_lock()) own->unlock();
          object = own.get();
        }
        fasteners_lock lock(*object);
        if (::write(ready[1], "r", 1) != 1) die("ready pipe");
        wait_for_go(go[0]);
        hammer(a, a.contenders[i], lock, opt);
      });
    }
  }
  if (processes) ::close(ready[1]);  // a child that dies before it is ready then reads as EOF
  for (int i = 0; i < n; ++i) {
    char c;
    if (::read(ready[0], &c, 1) != 1) die("a contender failed to start");
  }
  if (!processes) ::close(ready[1]);
  ::close(ready[0]);
  const std::uint64_t start = monotonic_ns();
  a.deadline_ns = start + static_cast<std::uint64_t>(opt.seconds * 1e9);
  ::close(go[1]);  // EOF wakes every contender at once

  bool failed = false;
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    failed = failed || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  }
  for (auto& t : threads) t.join();
  ::close(go[0]);
  if (failed) die(mode + ": a contender failed");

  result r;
  r.mode = mode;
  r.n = n;
  std::vector<std::uint64_t> merged(buckets, 0);
  std::uint64_t max_wait = 0;
  for (int i = 0; i < n; ++i) {
    const auto& c = a.contenders[i];
    r.acquisitions += c.acquisitions;
    for (int b = 0; b < buckets; ++b) merged[b] += c.waits[b];
    max_wait = std::max(max_wait, c.max_wait_ns);
  }
  if (a.counter != r.acquisitions || a.violations.load() != 0) {
    die(mode + ": mutual exclusion violated (" + std::to_string(a.violations.load()) + " overlaps)");
  }
  r.per_second = static_cast<double>(r.acquisitions) / opt.seconds;
  double sum_sq = 0;
  for (int i = 0; i < n; ++i) {
    const double share = r.acquisitions == 0 ? 0
                                             : static_cast<double>(a.contenders[i].acquisitions) * n /
                                                   static_cast<double>(r.acquisitions);
    r.shares.push_back(share);
    sum_sq += share * share;
    if (share < 0.1) ++r.starved;
  }
  r.min_share = *std::min_element(r.shares.begin(), r.shares.end());
  r.max_share = *std::max_element(r.shares.begin(), r.shares.end());
  r.jain = sum_sq == 0 ? 0 : static_cast<double>(n) / sum_sq;  // (sum shares)^2 / (n sum shares^2), sum = n
  std::uint64_t total = 0;
  for (auto count : merged) total += count;
  auto percentile = [&](double p) {
    const auto rank = static_cast<std::uint64_t>(std::ceil(p * static_cast<double>(total)));
    std::uint64_t seen = 0;
    for (int b = 0; b < buckets; ++b) {
      seen += merged[b];
      if (seen >= std::max<std::uint64_t>(rank, 1)) return bucket_middle(b) / 1000.0;
    }
    return 0.0;
  };
  r.wait_median_us = percentile(0.5);
  r.wait_p99_us = percentile(0.99);
  r.wait_max_us = static_cast<double>(max_wait) / 1000.0;
  r.violations = a.violations.load();
  a.~arena();
  ::munmap(mapped, bytes);
  return r;
}

template <class T>
std::vector<T> split(const std::string& list, T (*convert)(const std::string&)) {
  std::vector<T> parts;
  std::stringstream in(list);
  for (std::string part; std::getline(in, part, ',');) {
    if (!part.empty()) parts.push_back(convert(part));
  }
  return parts;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: contention [--n 2,4,8,16,32] [--seconds S] [--hold-ns N] [--think-ns N] [--json FILE]\n"
               "                  [--modes processes,raw_ofd_processes,threads_shared,threads_own]\n");
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
    if (arg == "--n") {
      opt.counts = split<int>(value(), [](const std::string& s) { return std::stoi(s); });
    } else if (arg == "--seconds") {
      opt.seconds = std::stod(value());
    } else if (arg == "--modes") {
      opt.modes = split<std::string>(value(), [](const std::string& s) { return s; });
    } else if (arg == "--hold-ns") {
      opt.hold_ns = std::stoull(value());
    } else if (arg == "--think-ns") {
      opt.think_ns = std::stoull(value());
    } else if (arg == "--json") {
      opt.json = value();
    } else {
      usage();
    }
  }
  for (int n : opt.counts) {
    if (n < 1 || n > max_contenders) usage();
  }
  for (const auto& m : opt.modes) {
    if (m != "processes" && m != "raw_ofd_processes" && m != "threads_shared" && m != "threads_own") usage();
  }
  if (!(opt.seconds > 0)) usage();
  return opt;
}

}  // namespace

int main(int argc, char** argv) {
  const options opt = parse(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  std::string pattern = (fs::temp_directory_path() / "fasteners-contention-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) die("mkdtemp failed");
  const fs::path dir = pattern;

  std::printf("%-18s %4s %12s %9s %9s %6s %7s %10s %10s %10s %9s\n", "mode", "N", "acq/s", "min_share", "max_share",
              "jain", "starved", "wait_med", "wait_p99", "wait_max", "max/med");
  std::vector<result> results;
  for (int n : opt.counts) {
    for (const auto& mode : opt.modes) {
      const fs::path lock_path = dir / (mode + "-" + std::to_string(n) + ".lock");
      result r = run(mode, n, opt, lock_path);
      std::printf("%-18s %4d %12.0f %9.3f %9.3f %6.3f %7d %9.1fus %9.1fus %9.1fus %9.0f\n", r.mode.c_str(), r.n,
                  r.per_second, r.min_share, r.max_share, r.jain, r.starved, r.wait_median_us, r.wait_p99_us,
                  r.wait_max_us, r.wait_median_us > 0 ? r.wait_max_us / r.wait_median_us : 0.0);
      std::fflush(stdout);
      results.push_back(std::move(r));
    }
  }

  if (!opt.json.empty()) {
    std::ofstream out(opt.json);
    out << "{\n  \"seconds\": " << opt.seconds << ",\n  \"hold_ns\": " << opt.hold_ns
        << ",\n  \"think_ns\": " << opt.think_ns << ",\n  \"results\": [\n";
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      out << "    {\"mode\": \"" << r.mode << "\", \"n\": " << r.n << ", \"per_second\": " << r.per_second
          << ", \"acquisitions\": " << r.acquisitions << ", \"min_share\": " << r.min_share
          << ", \"max_share\": " << r.max_share << ", \"jain\": " << r.jain << ", \"starved\": " << r.starved
          << ", \"wait_median_us\": " << r.wait_median_us << ", \"wait_p99_us\": " << r.wait_p99_us
          << ", \"wait_max_us\": " << r.wait_max_us << ", \"shares\": [";
      for (std::size_t j = 0; j < r.shares.size(); ++j) out << (j ? ", " : "") << r.shares[j];
      out << "]}" << (i + 1 < results.size() ? "," : "") << "\n";
    }
    out << "  ]\n}\n";
  }
  std::error_code ignored;
  fs::remove_all(dir, ignored);
  return 0;
}
