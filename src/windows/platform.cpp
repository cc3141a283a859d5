// Threads and fork for the shared layers (Windows: there is no fork()).
#include "platform.hpp"

#include "resource_record.hpp"

#include <thread>

namespace fasteners::detail {

unsigned process_generation() noexcept { return 0; }

void install_fork_handlers() noexcept {}

namespace {
int unused_create_thread(void* (*)(void*), void*) { return 0; }
}  // namespace

// Windows waits with deadlines in the kernel: no helper threads are started
// for timed waits, and the table is here for the shared code only.
platform_calls& platform_table() noexcept {
  static platform_calls table{&unused_create_thread};
  return table;
}

bool start_background_thread(std::function<void()> body) noexcept {
  try {
    std::thread(std::move(body)).detach();
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace fasteners::detail
