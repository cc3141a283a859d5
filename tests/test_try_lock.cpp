// try_lock / try_read_lock: Python fasteners' tests/test_helpers.py, over
// every lock type the helpers accept.
#include <fasteners/try_lock.hpp>

#include "inter_thread_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <utility>

namespace {

using fasteners::test::held_exclusively_elsewhere;
using fasteners::test::lock_maker;
using fasteners::test::temp_dir;
using namespace std::chrono_literals;

template <class L>
class TryLock : public ::testing::Test {
 protected:
  std::unique_ptr<L> make(int n = 0) { return lock_maker<L>::make(dir_, n); }
  temp_dir dir_;
};
TYPED_TEST_SUITE(TryLock, fasteners::test::all_lock_types, fasteners::test::lock_type_names);

template <class L>
class TryReadLock : public TryLock<L> {};
TYPED_TEST_SUITE(TryReadLock, fasteners::test::shared_lock_types, fasteners::test::lock_type_names);

template <class L>
class TimedTryLock : public TryLock<L> {};
TYPED_TEST_SUITE(TimedTryLock, fasteners::test::timed_lock_types, fasteners::test::lock_type_names);

template <class L>
class TimedTryReadLock : public TryLock<L> {};
TYPED_TEST_SUITE(TimedTryReadLock, fasteners::test::shared_timed_lock_types, fasteners::test::lock_type_names);

// Another thread's try, so that the answer never depends on reentrancy.
template <class L>
bool try_elsewhere(L& lock) {
  return std::async(std::launch::async, [&lock] { return static_cast<bool>(fasteners::try_lock(lock)); }).get();
}

// fasteners' test_try_lock: true, then false while held.
TYPED_TEST(TryLock, TrueThenFalseWhileHeld) {
  auto lock = this->make();
  {
    auto first = fasteners::try_lock(*lock);
    EXPECT_TRUE(first);
    EXPECT_TRUE(first.owns_lock());
    EXPECT_FALSE(try_elsewhere(*lock));
  }
  EXPECT_TRUE(try_elsewhere(*lock));
}

TYPED_TEST(TryLock, AFailedTryOwnsNothingAndReleasesNothing) {
  auto lock = this->make();
  auto holder = fasteners::try_lock(*lock);
  ASSERT_TRUE(holder);
  std::async(std::launch::async, [&] {
    auto failed = fasteners::try_lock(*lock);
    EXPECT_FALSE(failed);
    EXPECT_FALSE(failed.owns_lock());
  }).get();  // `failed` is gone: the holder must still hold
  EXPECT_TRUE(held_exclusively_elsewhere(*lock));
}

TYPED_TEST(TryLock, GuardCanBeReleasedEarlyAndMoved) {
  auto lock = this->make();
  auto guard = fasteners::try_lock(*lock);
  ASSERT_TRUE(guard);
  auto moved = std::move(guard);
  EXPECT_FALSE(guard);  // NOLINT(bugprone-use-after-move): checking the moved-from state on purpose
  EXPECT_TRUE(moved);
  EXPECT_TRUE(held_exclusively_elsewhere(*lock));
  moved.unlock();
  EXPECT_FALSE(held_exclusively_elsewhere(*lock));
}

TYPED_TEST(TimedTryLock, WaitsForARelease) {
  auto lock = this->make();
  auto holder = fasteners::try_lock(*lock);
  ASSERT_TRUE(holder);
  EXPECT_FALSE(std::async(std::launch::async, [&] { return fasteners::try_lock(*lock, 20ms).owns_lock(); }).get());
  auto waiter = std::async(std::launch::async, [&] {
    auto guard = fasteners::try_lock(*lock, fasteners::test::deadlock_timeout);
    return guard.owns_lock();
  });
  holder.unlock();
  EXPECT_TRUE(waiter.get());
}

TYPED_TEST(TryReadLock, ReadersShareWritersAreRefused) {
  auto lock = this->make();
  auto reader = fasteners::try_read_lock(*lock);
  ASSERT_TRUE(reader);
  EXPECT_TRUE(std::async(std::launch::async, [&] { return fasteners::try_read_lock(*lock).owns_lock(); }).get());
  EXPECT_FALSE(try_elsewhere(*lock));
  reader.unlock();
  EXPECT_TRUE(try_elsewhere(*lock));
}

TYPED_TEST(TryReadLock, FalseWhileWriteHeld) {
  auto lock = this->make();
  auto writer = fasteners::try_lock(*lock);
  ASSERT_TRUE(writer);
  EXPECT_FALSE(std::async(std::launch::async, [&] { return fasteners::try_read_lock(*lock).owns_lock(); }).get());
}

TYPED_TEST(TimedTryReadLock, WaitsForAWriterToLeave) {
  auto lock = this->make();
  auto writer = fasteners::try_lock(*lock);
  ASSERT_TRUE(writer);
  EXPECT_FALSE(std::async(std::launch::async, [&] { return fasteners::try_read_lock(*lock, 20ms).owns_lock(); }).get());
  auto reader = std::async(std::launch::async, [&] {
    auto guard = fasteners::try_read_lock(*lock, fasteners::test::deadlock_timeout);
    return guard.owns_lock();
  });
  writer.unlock();
  EXPECT_TRUE(reader.get());
}

}  // namespace
