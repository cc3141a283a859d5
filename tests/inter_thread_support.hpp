// Plumbing for the inter-thread tests: the lock types the helper tests run
// over, a latch (C++17 has none), and a watchdog for tests whose failure mode
// is a deadlock.
#pragma once

#include <fasteners/interprocess_lock.hpp>
#include <fasteners/reader_writer_lock.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>

namespace fasteners::test {

// Generous: a loaded 2-core CI box must never hit it; a deadlock always does.
inline constexpr std::chrono::seconds deadlock_timeout{60};

// Makes locks of type L for a test: default-constructed, or on a fresh file
// in the test's temporary directory for the inter-process locks.
// args() gives the constructor arguments, for types that hold a lock by value.
template <class L>
struct lock_maker {
  static std::tuple<> args(const temp_dir&, int) { return {}; }
  static std::unique_ptr<L> make(const temp_dir&, int) { return std::make_unique<L>(); }
};
template <>
struct lock_maker<interprocess_lock> {
  static std::tuple<std::filesystem::path> args(const temp_dir& dir, int n) {
    return {dir / ("lock" + std::to_string(n))};
  }
  static std::unique_ptr<interprocess_lock> make(const temp_dir& dir, int n) {
    return std::make_unique<interprocess_lock>(dir / ("lock" + std::to_string(n)));
  }
};
template <>
struct lock_maker<interprocess_reader_writer_lock> {
  static std::tuple<std::filesystem::path> args(const temp_dir& dir, int n) {
    return {dir / ("rwlock" + std::to_string(n))};
  }
  static std::unique_ptr<interprocess_reader_writer_lock> make(const temp_dir& dir, int n) {
    return std::make_unique<interprocess_reader_writer_lock>(dir / ("rwlock" + std::to_string(n)));
  }
};

template <class L>
constexpr bool has_shared_mode =
    !std::is_same_v<L, std::mutex> && !std::is_same_v<L, std::timed_mutex> && !std::is_same_v<L, interprocess_lock>;

// Every lock the helpers promise to accept. Not std::shared_mutex on
// Windows: mingw-w64 builds it on winpthreads' pthread_rwlock_t, which under
// wine 8 lets two writers in (Locked/std_shared_mutex.CallsExcludeEachOther
// failed 12 of 30 repeats, reader_writer_lock 0 of 30): the platform's lock
// is broken there, and testing our helpers on it tests nothing of ours.
#ifdef _WIN32
using all_lock_types =
    ::testing::Types<std::mutex, reader_writer_lock, interprocess_lock, interprocess_reader_writer_lock>;
using shared_lock_types = ::testing::Types<reader_writer_lock, interprocess_reader_writer_lock>;
#else
using all_lock_types = ::testing::Types<std::mutex, std::shared_mutex, reader_writer_lock, interprocess_lock,
                                        interprocess_reader_writer_lock>;
// Those with a shared (read) mode.
using shared_lock_types = ::testing::Types<std::shared_mutex, reader_writer_lock, interprocess_reader_writer_lock>;
#endif
// TimedLockable ones. ThreadSanitizer before LLVM 15 does not intercept
// pthread_mutex_clocklock, which std::timed_mutex::try_lock_for uses, and then
// reports the unlock as an unlock of an unlocked mutex; leave it out there.
#if defined(__SANITIZE_THREAD__)
#define FASTENERS_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FASTENERS_TEST_TSAN 1
#endif
#endif
#if defined(FASTENERS_TEST_TSAN)
using timed_lock_types =
    ::testing::Types<std::shared_timed_mutex, reader_writer_lock, interprocess_lock, interprocess_reader_writer_lock>;
#else
using timed_lock_types = ::testing::Types<std::timed_mutex, std::shared_timed_mutex, reader_writer_lock,
                                          interprocess_lock, interprocess_reader_writer_lock>;
#endif
// SharedTimedLockable ones.
using shared_timed_lock_types =
    ::testing::Types<std::shared_timed_mutex, reader_writer_lock, interprocess_reader_writer_lock>;

struct lock_type_names {
  template <class L>
  static std::string GetName(int) {
    if constexpr (std::is_same_v<L, std::mutex>) return "std_mutex";
    if constexpr (std::is_same_v<L, std::shared_mutex>) return "std_shared_mutex";
    if constexpr (std::is_same_v<L, std::timed_mutex>) return "std_timed_mutex";
    if constexpr (std::is_same_v<L, std::shared_timed_mutex>) return "std_shared_timed_mutex";
    if constexpr (std::is_same_v<L, reader_writer_lock>) return "reader_writer_lock";
    if constexpr (std::is_same_v<L, interprocess_lock>) return "interprocess_lock";
    if constexpr (std::is_same_v<L, interprocess_reader_writer_lock>) return "interprocess_reader_writer_lock";
    return "other";
  }
};

// Asks from another thread: the standard locks make a try_lock by the holder
// undefined, and the inter-process ones answer it differently, so "is it held?"
// is always asked by a thread that holds nothing.
template <class L>
bool held_exclusively_elsewhere(L& lock) {
  return std::async(std::launch::async,
                    [&lock] {
                      if (!lock.try_lock()) return true;
                      lock.unlock();
                      return false;
                    })
      .get();
}

template <class L>
bool can_read_elsewhere(L& lock) {
  return std::async(std::launch::async,
                    [&lock] {
                      if (!lock.try_lock_shared()) return false;
                      lock.unlock_shared();
                      return true;
                    })
      .get();
}

class latch {
 public:
  explicit latch(int count) : count_(count) {}
  void count_down() {
    std::lock_guard<std::mutex> guard(mutex_);
    if (--count_ <= 0) cv_.notify_all();
  }
  // False if the count did not reach zero in time.
  bool wait(std::chrono::milliseconds timeout = deadlock_timeout) {
    std::unique_lock<std::mutex> guard(mutex_);
    return cv_.wait_for(guard, timeout, [this] { return count_ <= 0; });
  }
  bool arrive_and_wait(std::chrono::milliseconds timeout = deadlock_timeout) {
    count_down();
    return wait(timeout);
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int count_;
};

// Runs `fn` on its own thread; if it has not finished within `timeout` the
// test process cannot recover its stuck threads, so it reports and aborts.
template <class Fn>
void finishes_or_abort(const char* what, Fn fn, std::chrono::milliseconds timeout = deadlock_timeout) {
  auto done = std::async(std::launch::async, std::move(fn));
  if (done.wait_for(timeout) != std::future_status::ready) {
    std::fprintf(stderr, "DEADLOCK: %s did not finish within %lld ms\n", what, static_cast<long long>(timeout.count()));
    std::fflush(stderr);
    std::abort();
  }
  done.get();  // rethrows
}

// Waits until `condition()` holds; false if it does not within the timeout.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = deadlock_timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace fasteners::test
