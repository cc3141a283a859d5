#include "session_registry.hpp"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <mutex>

namespace fasteners::detail {

namespace {

// Slots hold fd + 1 (0 = free). More sessions than slots is survivable: the
// extra ones are still closed by the record table through forget_after_fork.
// Each slot also keeps the socket's inode: libpq closes a broken
// connection's socket itself, and the number may belong to another file by
// the time the session unregisters it (or a child is forked); the child only
// closes a descriptor that is still the same socket.
constexpr std::size_t slot_count = 4096;
std::atomic<int> slots[slot_count];
std::atomic<unsigned long long> inodes[slot_count];

unsigned long long inode_of(int fd) noexcept {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? static_cast<unsigned long long>(st.st_ino) : 0;
}

constexpr std::size_t handler_count = 8;
std::atomic<void (*)()> handlers[handler_count];

void child_after_fork() {
  for (std::size_t i = 0; i < slot_count; ++i) {
    const int value = slots[i].exchange(0);
    if (value <= 0) continue;
    const unsigned long long inode = inodes[i].load();
    if (inode != 0 && inode_of(value - 1) == inode) ::close(value - 1);
  }
  for (auto& h : handlers) {
    if (auto* f = h.load()) f();
  }
}

}  // namespace

void register_session_socket(int fd) noexcept {
  if (fd < 0) return;
  install_fork_handler();
  const unsigned long long inode = inode_of(fd);
  for (std::size_t i = 0; i < slot_count; ++i) {
    int expected = 0;
    // Until the inode is stored, a fork child leaves this one open (harmless:
    // it is close-on-exec, and it is closed with the session).
    if (slots[i].compare_exchange_strong(expected, fd + 1)) {
      inodes[i].store(inode);
      return;
    }
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
  for (std::size_t i = 0; i < slot_count; ++i) {
    int expected = fd + 1;
    if (slots[i].compare_exchange_strong(expected, 0)) {
      const unsigned long long inode = inodes[i].load();
      if (inode != 0 && inode_of(fd) == inode) ::close(fd);
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
