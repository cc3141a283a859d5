// Fork detection: a child must never release (or think it holds) its parent's
// locks. pthread_atfork bumps a counter in every child.
#include "file_lock.hpp"

#include <pthread.h>

#include <atomic>

namespace fasteners::detail {

namespace {
std::atomic<unsigned> generation{0};

void on_fork_in_child() noexcept { generation.fetch_add(1, std::memory_order_relaxed); }

const bool registered = [] {
  ::pthread_atfork(nullptr, nullptr, &on_fork_in_child);
  return true;
}();
}  // namespace

unsigned process_generation() noexcept {
  (void)registered;
  return generation.load(std::memory_order_relaxed);
}

}  // namespace fasteners::detail
