// Timed waits for fcntl locks.
//
// POSIX has no F_SETLKW with a timeout, and polling F_SETLK every 10-100 ms
// (what Python fasteners and most peers do) hands the lock over late. On Linux
// we block in F_(OFD_)SETLKW and have a per-thread timer interrupt the call at
// the deadline with a real-time signal whose handler does nothing (installed
// without SA_RESTART, so the call fails with EINTR). The timer keeps firing
// every millisecond after the deadline, so a signal that lands just before we
// enter fcntl cannot leave us blocked. The timer is armed only while this
// thread waits with the signal unblocked, and disarmed before the thread's own
// mask comes back: a tick that fired by then has already run the empty
// handler, so no copy is left pending and the application never sees it.
//
// Each thread keeps its timer, disarmed, from one wait to the next: creating
// and deleting one per wait cost two more system calls, and the wake-up to
// return path is then a single timer_settime(), which is what a handoff to a
// timed waiter pays over a blocking one (see docs/PERFORMANCE.md).
//
// Where that is not available (other systems, no free real-time signal, or the
// application took the handler over) we poll with a short back-off capped at
// one millisecond, which keeps the hand-over lag under about a millisecond.
#include "posix/posix_lock_file.hpp"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#if defined(__linux__)
#include <sys/syscall.h>
#define FASTENERS_HAVE_THREAD_TIMER 1
#endif

namespace fasteners::detail::posix {

namespace {

using std::chrono::steady_clock;

int poll_until(int fd, int try_command, struct flock request, deadline until) noexcept {
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    const int error = lock_try(fd, try_command, request);
    if (error == 0 || !is_busy(error)) return error;
    const auto now = steady_clock::now();
    if (now >= until) return error;
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(until - now);
    std::this_thread::sleep_for(std::min(pause, left + std::chrono::microseconds(1)));
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

#if FASTENERS_HAVE_THREAD_TIMER
extern "C" void fasteners_interrupt_handler(int) {}

// Claims a real-time signal nobody uses, once per process; 0 if none is free.
int interrupt_signal() noexcept {
  static const int claimed = [] {
    for (int sig = SIGRTMAX; sig >= SIGRTMIN; --sig) {
      struct sigaction current {};
      if (::sigaction(sig, nullptr, &current) != 0) continue;
      if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL) continue;
      struct sigaction ours {};
      ours.sa_handler = &fasteners_interrupt_handler;
      sigemptyset(&ours.sa_mask);
      ours.sa_flags = 0;  // no SA_RESTART: the wait must fail with EINTR
      if (::sigaction(sig, &ours, nullptr) == 0) return sig;
    }
    return 0;
  }();
  return claimed;
}

bool handler_still_ours(int sig) noexcept {
  struct sigaction current {};
  return ::sigaction(sig, nullptr, &current) == 0 && (current.sa_flags & SA_SIGINFO) == 0 &&
         current.sa_handler == &fasteners_interrupt_handler;
}

// This thread's interrupt timer, created on its first timed wait. A fork
// child inherits the variable but not the timer (timers are per process), so
// it makes its own and never deletes the parent's id, which may name one of
// its own timers.
class thread_interrupt_timer {
 public:
  thread_interrupt_timer() = default;
  thread_interrupt_timer(const thread_interrupt_timer&) = delete;
  thread_interrupt_timer& operator=(const thread_interrupt_timer&) = delete;
  ~thread_interrupt_timer() {
    if (created_ && generation_ == process_generation()) ::timer_delete(timer_);
  }

  // nullptr if no timer can be had (the caller then polls).
  timer_t* get(int sig) noexcept {
    const unsigned generation = process_generation();
    if (created_ && generation_ == generation) return &timer_;
    created_ = false;
    sigevent event{};
    event.sigev_notify = SIGEV_THREAD_ID;
    event.sigev_signo = sig;
    event._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
    if (::timer_create(CLOCK_MONOTONIC, &event, &timer_) != 0) return nullptr;
    created_ = true;
    generation_ = generation;
    return &timer_;
  }

 private:
  timer_t timer_{};
  bool created_ = false;
  unsigned generation_ = 0;
};

thread_local thread_interrupt_timer interrupt_timer;

timespec to_timespec(steady_clock::duration d) noexcept {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  return ts;
}
#endif

}  // namespace

int lock_until(int fd, int try_command, int wait_command, struct flock request, deadline until) noexcept {
  if (until == deadline::max()) return lock_wait(fd, wait_command, request);
  if (steady_clock::now() >= until) return lock_try(fd, try_command, request);
#if FASTENERS_HAVE_THREAD_TIMER
  const int sig = interrupt_signal();
  if (sig == 0 || !handler_still_ours(sig)) return poll_until(fd, try_command, request, until);

  timer_t* const timer = interrupt_timer.get(sig);
  if (timer == nullptr) return poll_until(fd, try_command, request, until);

  sigset_t just_ours;
  sigemptyset(&just_ours);
  sigaddset(&just_ours, sig);
  sigset_t saved;
  pthread_sigmask(SIG_UNBLOCK, &just_ours, &saved);
  itimerspec when{};
  const auto left = until - steady_clock::now();
  when.it_value = to_timespec(std::max(left, steady_clock::duration(std::chrono::microseconds(1))));
  when.it_interval = to_timespec(std::chrono::milliseconds(1));
  ::timer_settime(*timer, 0, &when, nullptr);

  int result;
  for (;;) {
    struct flock copy = request;
    if (syscall_table().fcntl_lock(fd, wait_command, &copy) == 0) {
      result = 0;
      break;
    }
    result = errno;
    if (result != EINTR) break;
    if (steady_clock::now() >= until) {
      result = lock_try(fd, try_command, request);  // the promised last look
      break;
    }
  }
  // Disarm while the signal is still unblocked: a tick that fired before this
  // is delivered (to the empty handler) on the way back from the call, so
  // nothing stays pending once the thread's mask is restored.
  const itimerspec disarmed{};
  ::timer_settime(*timer, 0, &disarmed, nullptr);
  if (sigismember(&saved, sig) == 1) pthread_sigmask(SIG_BLOCK, &just_ours, nullptr);
  return result;
#else
  return poll_until(fd, try_command, request, until);
#endif
}

}  // namespace fasteners::detail::posix
