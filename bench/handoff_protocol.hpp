// What bench/handoff.cpp and bench/bench_postgres.cpp share: the layout of
// the shared memory in which the holder leaves its release time and the
// waiter its latencies, and the one-byte turn messages over two pipes (see
// bench/handoff.cpp for the protocol). bench/handoff_python.py speaks the
// same layout.
#pragma once

#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
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

}  // namespace bench
