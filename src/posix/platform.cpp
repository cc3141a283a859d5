// Threads and fork for the shared layers (POSIX).
#include "platform.hpp"

#include "resource_record.hpp"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <memory>

namespace fasteners::detail {

namespace {

std::atomic<unsigned> generation{0};

void prepare() noexcept { records_prepare_fork(); }
void parent() noexcept { records_after_fork_parent(); }
void child() noexcept {
  generation.fetch_add(1, std::memory_order_relaxed);
  records_after_fork_child();
}

extern "C" void* run_background_thread(void* arg) {
  std::unique_ptr<std::function<void()>> body(static_cast<std::function<void()>*>(arg));
  (*body)();
  return nullptr;
}

int real_create_thread(void* (*run)(void*), void* arg) {
  pthread_attr_t attr;
  ::pthread_attr_init(&attr);
  ::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  ::pthread_attr_setstacksize(&attr, 256 * 1024);  // the body is a blocking fcntl loop
  pthread_t thread;
  const int error = ::pthread_create(&thread, &attr, run, arg);
  ::pthread_attr_destroy(&attr);
  return error;
}

}  // namespace

platform_calls& platform_table() noexcept {
  static platform_calls table{&real_create_thread};
  return table;
}

unsigned process_generation() noexcept { return generation.load(std::memory_order_relaxed); }

void install_fork_handlers() noexcept {
  static const bool installed = [] {
    ::pthread_atfork(&prepare, &parent, &child);
    return true;
  }();
  (void)installed;
}

bool start_background_thread(std::function<void()> body) noexcept {
  std::unique_ptr<std::function<void()>> owned;
  try {
    owned = std::make_unique<std::function<void()>>(std::move(body));
  } catch (...) {
    return false;
  }
  // The new thread inherits this mask: all signals blocked from its first
  // instruction, so none of the application's can land on it.
  sigset_t all, saved;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &saved);
  const int error = platform_table().create_thread(&run_background_thread, owned.get());
  ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (error != 0) return false;
  owned.release();  // the thread owns it now
  return true;
}

}  // namespace fasteners::detail
