// What the shared layers need from the platform: one small interface, one
// implementation each in posix/platform.cpp and windows/platform.cpp.
#pragma once

#include <functional>

namespace fasteners::detail {

// Starts a detached thread running `body`, with every signal blocked in it
// (POSIX) so that the application's signals are never delivered to our
// threads. False if no thread could be started.
bool start_background_thread(std::function<void()> body) noexcept;

// The thread-starting call start_background_thread makes (POSIX:
// pthread_create with our attributes), replaceable so that tests can make it
// fail and see timed waits fall back to polling. Returns 0 or an errno value.
struct platform_calls {
  int (*create_thread)(void* (*run)(void*), void* arg);
};
platform_calls& platform_table() noexcept;

// Registers, once, the one pthread_atfork handler of the library: around
// fork() it holds the record table (and the helper pool), and in the child it
// counts a new process generation and resets the table. No-op without fork().
void install_fork_handlers() noexcept;

// Called by that handler (resource_record.cpp).
void records_prepare_fork() noexcept;
void records_after_fork_parent() noexcept;
void records_after_fork_child() noexcept;

}  // namespace fasteners::detail
