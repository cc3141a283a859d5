// synchronized<T, Lock>: data reachable only with its lock held, over every
// lock type the helpers accept.
#include <fasteners/synchronized.hpp>

#include "inter_thread_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using fasteners::synchronized;
using fasteners::test::has_shared_mode;
using fasteners::test::lock_maker;
using fasteners::test::temp_dir;
using namespace std::chrono_literals;

template <class L>
class Synchronized : public ::testing::Test {
 protected:
  template <class T, class... Args>
  std::unique_ptr<synchronized<T, L>> make(Args&&... args) {
    return std::make_unique<synchronized<T, L>>(
        std::piecewise_construct, std::forward_as_tuple(std::forward<Args>(args)...), lock_maker<L>::args(dir_, 0));
  }
  temp_dir dir_;
};
TYPED_TEST_SUITE(Synchronized, fasteners::test::all_lock_types, fasteners::test::lock_type_names);

template <class L>
class TimedSynchronized : public Synchronized<L> {};
TYPED_TEST_SUITE(TimedSynchronized, fasteners::test::timed_lock_types, fasteners::test::lock_type_names);

// Asked from another thread, so that reentrancy never colours the answer.
template <class S>
bool writable_elsewhere(S& s) {
  return std::async(std::launch::async, [&s] { return static_cast<bool>(s.try_wlock()); }).get();
}
template <class S>
bool readable_elsewhere(const S& s) {
  return std::async(std::launch::async, [&s] { return static_cast<bool>(s.try_rlock()); }).get();
}

TYPED_TEST(Synchronized, WlockGivesMutableAccessAndHoldsTheLock) {
  auto names = this->template make<std::map<int, std::string>>();
  {
    auto w = names->wlock();
    ASSERT_TRUE(w);
    w->emplace(1, "one");
    (*w)[2] = "two";
    EXPECT_FALSE(writable_elsewhere(*names));
    EXPECT_FALSE(readable_elsewhere(*names));
  }
  EXPECT_TRUE(writable_elsewhere(*names));
  EXPECT_EQ(names->copy().size(), 2u);
}

TYPED_TEST(Synchronized, RlockGivesConstAccessSharedIfTheLockCanShare) {
  auto value = this->template make<std::vector<int>>(3u, 7);
  auto r = value->rlock();
  static_assert(std::is_const_v<std::remove_reference_t<decltype(*r)>>, "rlock() must give const access");
  static_assert(std::is_const_v<std::remove_pointer_t<decltype(r.operator->())>>);
  EXPECT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0], 7);
  EXPECT_FALSE(writable_elsewhere(*value));
  EXPECT_EQ(readable_elsewhere(*value), has_shared_mode<TypeParam>);
}

TYPED_TEST(Synchronized, WithLockAndWithReadLockForwardResults) {
  auto value = this->template make<std::string>("abc");
  const std::size_t size = value->with_lock([&](std::string& s) {
    EXPECT_FALSE(writable_elsewhere(*value));
    s += "def";
    return s.size();
  });
  EXPECT_EQ(size, 6u);
  const auto& view = *value;
  const char first = view.with_read_lock([&](const std::string& s) {
    static_assert(std::is_const_v<std::remove_reference_t<decltype(s)>>);
    EXPECT_FALSE(writable_elsewhere(*value));
    return s.front();
  });
  EXPECT_EQ(first, 'a');
  EXPECT_EQ(value->copy(), "abcdef");
}

TYPED_TEST(Synchronized, LockIsReleasedWhenTheCallableThrows) {
  auto value = this->template make<int>(1);
  EXPECT_THROW(value->with_lock([](int&) { throw std::runtime_error("broken"); }), std::runtime_error);
  EXPECT_THROW(value->with_read_lock([](const int&) { throw std::runtime_error("broken"); }), std::runtime_error);
  EXPECT_TRUE(writable_elsewhere(*value));
}

TYPED_TEST(Synchronized, LockedPtrMovesAndUnlocksEarly) {
  auto value = this->template make<int>(5);
  auto w = value->wlock();
  auto moved = std::move(w);
  EXPECT_FALSE(w);  // NOLINT(bugprone-use-after-move): the moved-from pointer is empty
  EXPECT_EQ(w.get(), nullptr);
  ASSERT_TRUE(moved);
  EXPECT_EQ(*moved, 5);
  EXPECT_FALSE(writable_elsewhere(*value));
  moved.unlock();
  EXPECT_FALSE(moved);
  EXPECT_TRUE(writable_elsewhere(*value));
}

TYPED_TEST(Synchronized, TryFormsAreEmptyWhileHeldElsewhere) {
  auto value = this->template make<int>(0);
  auto w = value->wlock();
  std::async(std::launch::async, [&] {
    EXPECT_FALSE(value->try_wlock());
    EXPECT_FALSE(value->try_rlock());
    EXPECT_EQ(value->try_wlock().get(), nullptr);
  }).get();
}

// Unsynchronized, these increments get lost (and TSan reports the race).
TYPED_TEST(Synchronized, ConcurrentUpdatesAreNotLost) {
  auto counter = this->template make<long>(0L);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        if ((i + t) % 3 == 0) {
          counter->with_lock([](long& c) { ++c; });
        } else {
          auto w = counter->wlock();
          long seen = *w;
          std::this_thread::yield();
          *w = seen + 1;
        }
        if (i % 50 == 0) {
          EXPECT_GE(*counter->rlock(), 0);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter->copy(), 8000);
}

TYPED_TEST(TimedSynchronized, TimedFormsGiveUpAndThenSucceed) {
  auto value = this->template make<int>(1);
  {
    auto w = value->wlock();
    std::async(std::launch::async, [&] {
      EXPECT_FALSE(value->try_wlock_for(20ms));
      EXPECT_FALSE(value->try_wlock_until(std::chrono::steady_clock::now() + 20ms));
      if constexpr (has_shared_mode<TypeParam>) {
        EXPECT_FALSE(value->try_rlock_for(20ms));
        EXPECT_FALSE(value->try_rlock_until(std::chrono::system_clock::now() + 20ms));
      }
    }).get();
  }
  std::async(std::launch::async, [&] {
    auto w = value->try_wlock_for(fasteners::test::deadlock_timeout);
    ASSERT_TRUE(w);
    *w = 2;
  }).get();
  if constexpr (has_shared_mode<TypeParam>) {
    auto r = value->try_rlock_for(fasteners::test::deadlock_timeout);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, 2);
  }
}

TEST(SynchronizedDefaults, DefaultLockIsTheReaderWriterLock) {
  static_assert(std::is_same_v<synchronized<int>::lock_type, fasteners::reader_writer_lock>);
  synchronized<std::string> text{std::string("hi")};
  synchronized<std::vector<int>> numbers{std::in_place, 4u, 2};
  EXPECT_EQ(text.copy(), "hi");
  EXPECT_EQ(numbers.rlock()->size(), 4u);
  // Readers share the default lock.
  auto r = text.rlock();
  EXPECT_TRUE(readable_elsewhere(text));
  EXPECT_FALSE(writable_elsewhere(text));
}

}  // namespace
