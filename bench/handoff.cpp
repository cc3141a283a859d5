// handoff: how long a lock takes to pass from one process to another.
//
// Two processes hand one lock back and forth. The handoff latency is the time
// from the holder's release to the waiter's acquisition, both read with
// CLOCK_MONOTONIC: the holder stores the time in shared memory just before it
// releases, the waiter reads the clock right after it acquires.
//
// A turn protocol over two pipes makes the handoff strictly alternate and
// makes every handoff a real wake-up:
//   waiter: sends 'w', then acquires (and blocks);
//   holder: reads 'w', waits until /proc says the waiter sleeps (in the kernel
//           or, for polling locks, between polls), holds a random 0..hold-us
//           more, stores the time, releases, then reads 'a';
//   waiter: once it has the lock, records the latency and sends 'a'.
// The roles then swap. None of the protocol runs between the timestamp and
// the acquisition, so only the lock's own hand-over is measured.
//
// bench/handoff_python.py speaks the same protocol with Python fasteners.
//
// Variants take turns in --blocks blocks so that load drift hits them alike.
//
//   handoff [--rounds N] [--python-rounds N] [--hold-us N] [--blocks K] [--variants a,b,...]
//           [--python PATH] [--python-script PATH] [--json FILE] [--samples DIR]
#include <fasteners/interprocess_lock.hpp>

#include "handoff_protocol.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#ifndef FASTENERS_BENCH_DIR
#define FASTENERS_BENCH_DIR "bench"
#endif

void bench::die(const std::string& what) {
  std::fprintf(stderr, "handoff[%d]: %s\n", static_cast<int>(::getpid()), what.c_str());
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

namespace fs = std::filesystem;

class raw_fcntl_ops : public lock_ops {
 public:
  raw_fcntl_ops(fs::path path, int wait_command, int set_command)
      : path_(std::move(path)), wait_(wait_command), set_(set_command) {}
  ~raw_fcntl_ops() override {
    if (fd_ >= 0) ::close(fd_);
  }
  void prepare(bool) override {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd_ < 0) die("open " + path_.string() + ": " + std::strerror(errno));
  }
  void acquire() override { request(wait_, F_WRLCK); }
  void release() override { request(set_, F_UNLCK); }

 private:
  void request(int command, short type) {
    struct flock lk {};
    lk.l_type = type;
    lk.l_whence = SEEK_SET;
    while (::fcntl(fd_, command, &lk) != 0) {
      if (errno != EINTR) die(std::string("fcntl: ") + std::strerror(errno));
    }
  }
  fs::path path_;
  int wait_;
  int set_;
  int fd_ = -1;
};

// The floor for a wait that can give up without a signal: a helper thread
// blocks in F_OFD_SETLKW on the same descriptor and wakes the waiting thread
// through a futex (which, in the library, it could wait on with a deadline).
// No library code: two wake-ups, the kernel's of the helper and the helper's
// of the waiter, which is what any signal-free timed wait on fcntl pays.
class raw_helper_ops : public lock_ops {
 public:
  explicit raw_helper_ops(fs::path path) : path_(std::move(path)) {}
  ~raw_helper_ops() override {
    if (helper_.joinable()) {
      post(job_, 2);
      helper_.join();
    }
    if (fd_ >= 0) ::close(fd_);
  }
  void prepare(bool) override {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd_ < 0) die("open " + path_.string() + ": " + std::strerror(errno));
    helper_ = std::thread([this] {
      for (;;) {
        const int job = await(job_);
        if (job == 2) return;
        struct flock lk {};
        lk.l_type = F_WRLCK;
        lk.l_whence = SEEK_SET;
        while (::fcntl(fd_, F_OFD_SETLKW, &lk) != 0) {
          if (errno != EINTR) die(std::string("fcntl: ") + std::strerror(errno));
        }
        post(done_, 1);
      }
    });
  }
  void acquire() override {
    post(job_, 1);
    await(done_);
  }
  void release() override {
    struct flock lk {};
    lk.l_type = F_UNLCK;
    lk.l_whence = SEEK_SET;
    if (::fcntl(fd_, F_OFD_SETLK, &lk) != 0) die(std::string("fcntl: ") + std::strerror(errno));
  }

 private:
  static void post(std::atomic<int>& word, int value) {
    word.store(value);
    ::syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
  // Waits until `word` is non-zero, takes the value and clears it.
  static int await(std::atomic<int>& word) {
    for (;;) {
      const int value = word.exchange(0);
      if (value != 0) return value;
      ::syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
    }
  }
  fs::path path_;
  int fd_ = -1;
  std::atomic<int> job_{0};
  std::atomic<int> done_{0};
  std::thread helper_;
};

class fasteners_ops : public lock_ops {
 public:
  fasteners_ops(const fs::path& path, bool timed) : lock_(path), timed_(timed) {}
  void prepare(bool held_elsewhere) override {
    if (lock_.try_lock()) {
      if (held_elsewhere) die("try_lock succeeded while the peer holds the lock");
      lock_.unlock();
    }
  }
  void acquire() override {
    if (!timed_) {
      lock_.lock();
    } else if (!lock_.try_lock_for(std::chrono::seconds(30))) {
      die("try_lock_for(30 s) timed out");
    }
  }
  void release() override { lock_.unlock(); }

 private:
  fasteners::interprocess_lock lock_;
  bool timed_;
};

struct options {
  int rounds = 2000;
  int python_rounds = 200;
  int hold_us = 200;
  int blocks = 5;
  int timeout_s = 120;
  std::vector<std::string> variants{"raw_ofd", "raw_classic", "raw_helper", "lock", "try_lock_for", "python_fasteners"};
  std::string python = ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  std::string python_script = std::string(FASTENERS_BENCH_DIR) + "/handoff_python.py";
  std::string json;
  std::string samples;
};

struct stats {
  std::string variant;
  std::string description;
  int rounds = 0;
  double min = 0, median = 0, p90 = 0, p99 = 0, max = 0, mean = 0;  // microseconds
};

double percentile(const std::vector<std::int64_t>& sorted, double p) {
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)]) / 1000.0;
}

std::string describe(const std::string& variant) {
  if (variant == "raw_ofd") return "raw F_OFD_SETLKW / F_OFD_SETLK unlock (floor)";
  if (variant == "raw_classic") return "raw classic F_SETLKW / F_SETLK unlock";
  if (variant == "raw_helper") return "raw F_OFD_SETLKW on a helper thread, futex wake (timed floor)";
  if (variant == "lock") return "fasteners::interprocess_lock::lock()";
  if (variant == "try_lock_for") return "fasteners::interprocess_lock::try_lock_for(30 s)";
  if (variant == "python_fasteners") return "Python fasteners InterProcessLock.acquire() (polls)";
  return variant;
}

// Runs one variant in two fresh processes; nullopt if it could not run.
std::optional<std::vector<std::int64_t>> run_variant(const options& opt, const std::string& variant, int rounds,
                                                     const fs::path& dir, bool& skipped) {
  const bool python = variant == "python_fasteners";
  const fs::path lock_path = dir / (variant + ".lock");
  const fs::path shm_path = dir / (variant + ".shm");
  const std::size_t bytes = header_bytes + 8 * static_cast<std::size_t>(rounds);

  const int shm_fd = ::open(shm_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (shm_fd < 0 || ::ftruncate(shm_fd, static_cast<off_t>(bytes)) != 0) die("cannot create " + shm_path.string());
  void* mapped = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
  if (mapped == MAP_FAILED) die("mmap failed");
  ::close(shm_fd);
  const shared_view shm{static_cast<unsigned char*>(mapped)};
  for (int k = 0; k < rounds; ++k) shm.set_latency(k, -1);

  int zero_to_one[2];
  int one_to_zero[2];
  if (::pipe(zero_to_one) != 0 || ::pipe(one_to_zero) != 0) die("pipe failed");

  pid_t pids[2];
  for (int role = 0; role < 2; ++role) {
    const int in_fd = role == 0 ? one_to_zero[0] : zero_to_one[0];
    const int out_fd = role == 0 ? zero_to_one[1] : one_to_zero[1];
    std::fflush(nullptr);
    pids[role] = ::fork();
    if (pids[role] < 0) die("fork failed");
    if (pids[role] > 0) continue;
    // Child: keep only its two pipe ends, so that a dead peer reads as EOF.
    for (int fd : {zero_to_one[0], zero_to_one[1], one_to_zero[0], one_to_zero[1]}) {
      if (fd != in_fd && fd != out_fd) ::close(fd);
    }
    ::signal(SIGPIPE, SIG_DFL);
    if (python) {
      std::vector<std::string> args{opt.python,
                                    opt.python_script,
                                    "handoff",
                                    std::to_string(role),
                                    lock_path.string(),
                                    shm_path.string(),
                                    std::to_string(in_fd),
                                    std::to_string(out_fd),
                                    std::to_string(rounds),
                                    std::to_string(opt.hold_us)};
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      die("cannot run " + opt.python + ": " + std::strerror(errno));
    }
    const role_setup setup{role, in_fd, out_fd, shm, rounds, opt.hold_us};
    std::unique_ptr<lock_ops> ops;
    if (variant == "raw_ofd") {
      ops = std::make_unique<raw_fcntl_ops>(lock_path, F_OFD_SETLKW, F_OFD_SETLK);
    } else if (variant == "raw_helper") {
      ops = std::make_unique<raw_helper_ops>(lock_path);
    } else if (variant == "raw_classic") {
      ops = std::make_unique<raw_fcntl_ops>(lock_path, F_SETLKW, F_SETLK);
    } else if (variant == "lock" || variant == "try_lock_for") {
      ops = std::make_unique<fasteners_ops>(lock_path, variant == "try_lock_for");
    } else {
      die("unknown variant " + variant);
    }
    try {
      run_role(setup, *ops);
      ops.reset();
    } catch (const std::exception& e) {
      die(e.what());
    }
    ::_exit(0);
  }
  for (int fd : {zero_to_one[0], zero_to_one[1], one_to_zero[0], one_to_zero[1]}) ::close(fd);

  // Wait for both, killing them if they hang.
  const std::int64_t give_up = monotonic_ns() + static_cast<std::int64_t>(opt.timeout_s) * 1000000000;
  int status[2] = {0, 0};
  bool done[2] = {false, false};
  while (!done[0] || !done[1]) {
    for (int role = 0; role < 2; ++role) {
      if (!done[role] && ::waitpid(pids[role], &status[role], WNOHANG) == pids[role]) done[role] = true;
    }
    if (done[0] && done[1]) break;
    if (monotonic_ns() > give_up) {
      std::fprintf(stderr, "handoff: %s timed out after %d s\n", variant.c_str(), opt.timeout_s);
      for (int role = 0; role < 2; ++role) {
        if (!done[role]) {
          ::kill(pids[role], SIGKILL);
          ::waitpid(pids[role], &status[role], 0);
          done[role] = true;
        }
      }
      status[0] = status[1] = 1;
    }
    const timespec pause{0, 2'000'000};
    ::nanosleep(&pause, nullptr);
  }
  std::optional<std::vector<std::int64_t>> result;
  bool ok = true;
  for (int role = 0; role < 2; ++role) {
    if (!WIFEXITED(status[role]) || WEXITSTATUS(status[role]) != 0) {
      ok = false;
      if (WIFEXITED(status[role]) && WEXITSTATUS(status[role]) == 2) {
        if (!skipped) {
          std::fprintf(stderr, "handoff: %s skipped: %s could not import fasteners\n", variant.c_str(),
                       opt.python.c_str());
        }
        skipped = true;
      } else {
        std::fprintf(stderr, "handoff: %s failed (role %d, status 0x%x)\n", variant.c_str(), role, status[role]);
      }
    }
  }
  if (ok) {
    std::vector<std::int64_t> latencies;
    for (int k = 0; k < rounds; ++k) latencies.push_back(shm.latency(k));
    result = std::move(latencies);
  }
  ::munmap(mapped, bytes);
  return result;
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> parts;
  std::stringstream in(list);
  for (std::string part; std::getline(in, part, ',');) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: handoff [--rounds N] [--python-rounds N] [--hold-us N] [--blocks K] [--timeout S]\n"
               "               [--variants raw_ofd,raw_classic,lock,try_lock_for,python_fasteners]\n"
               "               [--python PATH] [--python-script PATH] [--json FILE] [--samples DIR]\n");
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
    if (arg == "--rounds") {
      opt.rounds = std::stoi(value());
    } else if (arg == "--python-rounds") {
      opt.python_rounds = std::stoi(value());
    } else if (arg == "--hold-us") {
      opt.hold_us = std::stoi(value());
    } else if (arg == "--blocks") {
      opt.blocks = std::stoi(value());
    } else if (arg == "--timeout") {
      opt.timeout_s = std::stoi(value());
    } else if (arg == "--variants") {
      opt.variants = split(value());
    } else if (arg == "--python") {
      opt.python = value();
    } else if (arg == "--python-script") {
      opt.python_script = value();
    } else if (arg == "--json") {
      opt.json = value();
    } else if (arg == "--samples") {
      opt.samples = value();
    } else {
      usage();
    }
  }
  if (opt.rounds < 1 || opt.python_rounds < 1 || opt.blocks < 1 || opt.hold_us < 0 || opt.hold_us > 999'999) usage();
  return opt;
}

}  // namespace

int main(int argc, char** argv) {
  const options opt = parse(argc, argv);
  std::string pattern = (fs::temp_directory_path() / "fasteners-handoff-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) die("mkdtemp failed");
  const fs::path dir = pattern;

  // Variants take turns in blocks, so that a change in machine load while we
  // run touches them all alike.
  std::vector<std::vector<std::int64_t>> samples(opt.variants.size());
  std::vector<bool> usable(opt.variants.size(), true);
  bool failed = false;
  for (int block = 0; block < opt.blocks; ++block) {
    for (std::size_t v = 0; v < opt.variants.size(); ++v) {
      if (!usable[v]) continue;
      const auto& variant = opt.variants[v];
      const int total = variant == "python_fasteners" ? opt.python_rounds : opt.rounds;
      const int rounds = total / opt.blocks + (block < total % opt.blocks ? 1 : 0);
      if (rounds == 0) continue;
      bool skipped = false;
      auto latencies = run_variant(opt, variant, rounds, dir, skipped);
      if (!latencies) {
        usable[v] = false;
        failed = failed || !skipped;
        continue;
      }
      samples[v].insert(samples[v].end(), latencies->begin(), latencies->end());
    }
  }

  std::vector<stats> results;
  std::printf("%-18s %8s %10s %10s %10s %10s %10s  (microseconds; hold 0..%d us)\n", "variant", "rounds", "min",
              "median", "p90", "p99", "max", opt.hold_us);
  for (std::size_t v = 0; v < opt.variants.size(); ++v) {
    if (!usable[v] || samples[v].empty()) continue;
    const auto& variant = opt.variants[v];
    auto* latencies = &samples[v];
    if (!opt.samples.empty()) {
      fs::create_directories(opt.samples);
      std::ofstream out(fs::path(opt.samples) / (variant + ".txt"));
      for (auto ns : *latencies) out << ns << '\n';
    }
    std::sort(latencies->begin(), latencies->end());
    if (latencies->front() < 0) die(variant + ": a handoff was not recorded");
    stats s;
    s.variant = variant;
    s.description = describe(variant);
    s.rounds = static_cast<int>(latencies->size());
    s.min = static_cast<double>(latencies->front()) / 1000.0;
    s.median = percentile(*latencies, 0.5);
    s.p90 = percentile(*latencies, 0.9);
    s.p99 = percentile(*latencies, 0.99);
    s.max = static_cast<double>(latencies->back()) / 1000.0;
    double sum = 0;
    for (auto ns : *latencies) sum += static_cast<double>(ns);
    s.mean = sum / static_cast<double>(latencies->size()) / 1000.0;
    std::printf("%-18s %8d %10.1f %10.1f %10.1f %10.1f %10.1f\n", s.variant.c_str(), s.rounds, s.min, s.median, s.p90,
                s.p99, s.max);
    results.push_back(s);
  }

  if (!opt.json.empty()) {
    std::ofstream out(opt.json);
    out << "{\n  \"unit\": \"us\",\n  \"hold_us\": " << opt.hold_us << ",\n  \"blocks\": " << opt.blocks
        << ",\n  \"variants\": [\n";
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& s = results[i];
      out << "    {\"name\": \"" << s.variant << "\", \"description\": \"" << s.description
          << "\", \"rounds\": " << s.rounds << ", \"min\": " << s.min << ", \"median\": " << s.median
          << ", \"p90\": " << s.p90 << ", \"p99\": " << s.p99 << ", \"max\": " << s.max << ", \"mean\": " << s.mean
          << "}" << (i + 1 < results.size() ? "," : "") << "\n";
    }
    out << "  ]\n}\n";
  }
  std::error_code ignored;
  fs::remove_all(dir, ignored);
  return failed ? 1 : 0;
}
