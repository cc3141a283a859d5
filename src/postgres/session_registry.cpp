#include "session_registry.hpp"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <mutex>

namespace fasteners::detail {

namespace {

// Slots hold fd + 1 (0 = free). More sessions than slots is survivable: the
// extra ones are still closed by the record table through forget_after_fork.
constexpr std::size_t slot_count = 4096;
std::atomic<int> slots[slot_count];

constexpr std::size_t handler_count = 8;
std::atomic<void (*)()> handlers[handler_count];

void child_after_fork() {
  for (auto& slot : slots) {
    const int value = slot.exchange(0);
    if (value > 0) ::close(value - 1);
  }
  for (auto& h : handlers) {
    if (auto* f = h.load()) f();
  }
}

}  // namespace

void register_session_socket(int fd) noexcept {
  if (fd < 0) return;
  install_fork_handler();
  for (auto& slot : slots) {
    int expected = 0;
    if (slot.compare_exchange_strong(expected, fd + 1)) return;
  }
}

void unregister_session_socket(int fd) noexcept {
  if (fd < 0) return;
  for (auto& slot : slots) {
    int expected = fd + 1;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

void close_registered_socket(int fd) noexcept {
  if (fd < 0) return;
  for (auto& slot : slots) {
    int expected = fd + 1;
    if (slot.compare_exchange_strong(expected, 0)) {
      ::close(fd);
      return;
    }
  }
}

void install_fork_handler() noexcept {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(nullptr, nullptr, child_after_fork); });
}

void on_fork_child(void (*handler)()) noexcept {
  install_fork_handler();
  for (auto& h : handlers) {
    void (*expected)() = nullptr;
    if (h.load() == handler) return;
    if (h.compare_exchange_strong(expected, handler)) return;
  }
}

}  // namespace fasteners::detail
