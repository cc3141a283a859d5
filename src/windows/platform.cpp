// Threads and fork for the shared layers (Windows: there is no fork()).
#include "platform.hpp"

#include "resource_record.hpp"

#include <thread>

namespace fasteners::detail {

unsigned process_generation() noexcept { return 0; }

void install_fork_handlers() noexcept {}

bool start_background_thread(std::function<void()> body) noexcept {
  try {
    std::thread(std::move(body)).detach();
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace fasteners::detail
