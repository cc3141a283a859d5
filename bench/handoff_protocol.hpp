// What bench/handoff.cpp and bench/bench_postgres.cpp share: the layout of
// the shared memory in which the holder leaves its release time and the
// waiter its latencies, the one-byte turn messages over two pipes, and the
// loop each of the two processes runs (see bench/handoff.cpp for the
// protocol). bench/handoff_python.py speaks the same layout and protocol.
#pragma once

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>

namespace bench {

// Prints `what` with the program's name and pid and ends the process; each
// program defines it.
[[noreturn]] void die(const std::string& what);

inline std::int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Shared memory layout:
//   0: int64 release time (ns)   8: int32 pid of role 0   12: int32 pid of role 1
//   16: int64 latency of handoff k (ns), k = 0 .. rounds-1
constexpr std::size_t header_bytes = 16;

struct shared_view {
  unsigned char* base;
  void set_release(std::int64_t ns) const { std::memcpy(base, &ns, 8); }
  std::int64_t release() const {
    std::int64_t ns;
    std::memcpy(&ns, base, 8);
    return ns;
  }
  void set_pid(int role, std::int32_t pid) const { std::memcpy(base + 8 + 4 * role, &pid, 4); }
  std::int32_t pid(int role) const {
    std::int32_t pid;
    std::memcpy(&pid, base + 8 + 4 * role, 4);
    return pid;
  }
  void set_latency(int k, std::int64_t ns) const { std::memcpy(base + header_bytes + 8 * k, &ns, 8); }
  std::int64_t latency(int k) const {
    std::int64_t ns;
    std::memcpy(&ns, base + header_bytes + 8 * k, 8);
    return ns;
  }
};

inline void send(int fd, char c) {
  while (::write(fd, &c, 1) != 1) {
    if (errno != EINTR) die(std::string("pipe write: ") + std::strerror(errno));
  }
}

inline void expect(int fd, char want) {
  char c = 0;
  for (;;) {
    const ssize_t n = ::read(fd, &c, 1);
    if (n == 1) break;
    if (n == 0) die("peer went away");
    if (errno != EINTR) die(std::string("pipe read: ") + std::strerror(errno));
  }
  if (c != want) die(std::string("protocol: expected '") + want + "', got '" + c + "'");
}

// Waits until `pid` sleeps (state S in /proc/PID/stat): it then waits inside
// the kernel or, for a polling lock, between two polls.
class sleep_watch {
 public:
  explicit sleep_watch(int pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/stat";
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) die("open " + path + ": " + std::strerror(errno));
  }
  ~sleep_watch() { ::close(fd_); }
  sleep_watch(const sleep_watch&) = delete;
  sleep_watch& operator=(const sleep_watch&) = delete;

  // False if it never slept within 5 s (the handoff is then still measured).
  bool wait_until_asleep() const {
    const std::int64_t give_up = monotonic_ns() + 5'000'000'000;
    while (state() != 'S') {
      if (monotonic_ns() > give_up) return false;
      const timespec pause{0, 20'000};
      ::nanosleep(&pause, nullptr);
    }
    return true;
  }

 private:
  char state() const {
    char buf[512];
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    if (n <= 0) die("reading the peer's /proc stat failed");
    buf[n] = '\0';
    const char* close_paren = std::strrchr(buf, ')');
    return close_paren != nullptr && close_paren[1] == ' ' ? close_paren[2] : '?';
  }
  int fd_;
};

// One side's way of taking and dropping the lock.
struct lock_ops {
  virtual ~lock_ops() = default;
  // Opens what the first call would open, so that the first measured
  // acquisition is not also the first use. `held_elsewhere`: the peer holds
  // the lock now.
  virtual void prepare(bool /*held_elsewhere*/) {}
  virtual void acquire() = 0;
  virtual void release() = 0;
};

struct role_setup {
  int role;
  int in_fd;
  int out_fd;
  shared_view shm;
  int rounds;
  int hold_us;
};

// One process's side of `s.rounds` handoffs; the roles swap every round.
// `peer_queued`, if set, is called by the holder once the waiter has said it
// is about to wait, before the holder waits for it to sleep.
inline void run_role(const role_setup& s, lock_ops& ops, const std::function<void()>& peer_queued = {}) {
  s.shm.set_pid(s.role, static_cast<std::int32_t>(::getpid()));
  std::minstd_rand random(static_cast<unsigned>(s.role + 1 + ::getpid()));
  std::uniform_int_distribution<int> hold_ns(0, s.hold_us * 1000);
  bool holder = s.role == 0;
  if (holder) {
    ops.prepare(false);
    ops.acquire();
    send(s.out_fd, 'a');
  } else {
    expect(s.in_fd, 'a');
    ops.prepare(true);
  }
  std::unique_ptr<sleep_watch> peer;
  for (int k = 0; k < s.rounds; ++k) {
    if (holder) {
      expect(s.in_fd, 'w');
      if (peer_queued) peer_queued();
      if (!peer) peer = std::make_unique<sleep_watch>(s.shm.pid(1 - s.role));
      peer->wait_until_asleep();
      if (s.hold_us > 0) {
        const timespec pause{0, hold_ns(random)};
        ::nanosleep(&pause, nullptr);
      }
      s.shm.set_release(monotonic_ns());
      ops.release();
      expect(s.in_fd, 'a');
    } else {
      send(s.out_fd, 'w');
      ops.acquire();
      const std::int64_t acquired = monotonic_ns();
      s.shm.set_latency(k, acquired - s.shm.release());
      send(s.out_fd, 'a');
    }
    holder = !holder;
  }
  if (holder) ops.release();
}

}  // namespace bench
