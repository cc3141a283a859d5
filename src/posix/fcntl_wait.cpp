// fcntl lock commands for the two POSIX back ends.
//
// There is no F_SETLKW with a timeout, and we take no signal to interrupt
// one: a signal is the application's (its handler, its mask, its sigwait()
// loop), and every way of borrowing one breaks some application. So a timed
// wait never blocks the waiting thread in the kernel. The resource record
// (resource_record.cpp) runs the blocking F_SETLKW on a helper thread, which
// has every signal blocked, while the waiter sleeps on a condition variable
// until its deadline; if the waiter gives up, the helper's wait goes on and
// its lock is handed to the next waiter, or given back unused. Only where no
// helper thread can be started does a timed wait poll (lock_poll), with a
// back-off capped at one millisecond.
#include "posix/posix_lock_file.hpp"

#include <cerrno>
#include <thread>

namespace fasteners::detail::posix {

int lock_command(int fd, int command, struct flock request) {
  for (;;) {
    struct flock copy = request;
    if (syscall_table().fcntl_lock(fd, command, &copy) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

int lock_poll(int fd, int try_command, struct flock request, deadline until) {
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    const int error = lock_command(fd, try_command, request);
    if (error == 0 || !is_busy(error)) return error;
    auto sleep = pause;
    if (until != no_deadline) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= until) return error;
      sleep = std::min(
          pause, std::chrono::duration_cast<std::chrono::microseconds>(until - now) + std::chrono::microseconds(1));
    }
    std::this_thread::sleep_for(sleep);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

}  // namespace fasteners::detail::posix
