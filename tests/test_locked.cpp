// locked / read_locked / write_locked: the behaviours of Python fasteners'
// tests/test_decorators.py, over every lock type the helpers accept.
#include <fasteners/locked.hpp>

#include "inter_thread_support.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using fasteners::test::can_read_elsewhere;
using fasteners::test::finishes_or_abort;
using fasteners::test::has_shared_mode;
using fasteners::test::held_exclusively_elsewhere;
using fasteners::test::lock_maker;
using fasteners::test::temp_dir;

template <class L>
class Locked : public ::testing::Test {
 protected:
  std::unique_ptr<L> make(int n = 0) { return lock_maker<L>::make(dir_, n); }
  temp_dir dir_;
};
TYPED_TEST_SUITE(Locked, fasteners::test::all_lock_types, fasteners::test::lock_type_names);

template <class L>
class ReadWriteLocked : public Locked<L> {};
TYPED_TEST_SUITE(ReadWriteLocked, fasteners::test::shared_lock_types, fasteners::test::lock_type_names);

// --- locked(lockables..., fn) ------------------------------------------------------

TYPED_TEST(Locked, HoldsTheLockForTheCallOnly) {
  auto lock = this->make();
  auto call = fasteners::locked(*lock, [&] { return held_exclusively_elsewhere(*lock); });
  EXPECT_FALSE(held_exclusively_elsewhere(*lock));
  EXPECT_TRUE(call());
  EXPECT_FALSE(held_exclusively_elsewhere(*lock));
  EXPECT_TRUE(call());  // and again
}

// fasteners' test_many_locked.
TYPED_TEST(Locked, TenLocksAreAllHeldDuringTheCall) {
  std::vector<std::unique_ptr<TypeParam>> locks;
  for (int i = 0; i < 10; ++i) locks.push_back(this->make(i));
  auto& l = locks;
  auto held_count = [&] {
    int held = 0;
    for (auto& one : l) held += held_exclusively_elsewhere(*one) ? 1 : 0;
    return held;
  };
  auto call = fasteners::locked(*l[0], *l[1], *l[2], *l[3], *l[4], *l[5], *l[6], *l[7], *l[8], *l[9], held_count);
  EXPECT_EQ(call(), 10);
  EXPECT_EQ(held_count(), 0);
}

TYPED_TEST(Locked, ForwardsArgumentsAndTheResult) {
  auto lock = this->make();
  int target = 0;
  auto call = fasteners::locked(*lock, [&](std::unique_ptr<int> moved, const std::string& copied, int& out) -> int& {
    out = *moved + static_cast<int>(copied.size());
    return target;
  });
  int out = 0;
  int& result = call(std::make_unique<int>(40), std::string("ab"), out);
  EXPECT_EQ(out, 42);
  EXPECT_EQ(&result, &target);  // a reference stays a reference
  static_assert(std::is_same_v<decltype(call(std::make_unique<int>(1), std::string(), out)), int&>);

  auto make_string = fasteners::locked(*lock, [](int n) { return std::string(static_cast<std::size_t>(n), 'x'); });
  static_assert(std::is_same_v<decltype(make_string(3)), std::string>);
  EXPECT_EQ(make_string(3), "xxx");
}

TYPED_TEST(Locked, ReleasesTheLocksWhenTheCallThrows) {
  auto a = this->make(0);
  auto b = this->make(1);
  auto call = fasteners::locked(*a, *b, [&] {
    EXPECT_TRUE(held_exclusively_elsewhere(*a));
    EXPECT_TRUE(held_exclusively_elsewhere(*b));
    throw std::runtime_error("broken");
  });
  EXPECT_THROW(call(), std::runtime_error);
  EXPECT_FALSE(held_exclusively_elsewhere(*a));
  EXPECT_FALSE(held_exclusively_elsewhere(*b));
}

TYPED_TEST(Locked, MutableAndConstCallables) {
  auto lock = this->make();
  auto counter = fasteners::locked(*lock, [n = 0]() mutable { return ++n; });
  EXPECT_EQ(counter(), 1);
  EXPECT_EQ(counter(), 2);
  const auto constant = fasteners::locked(*lock, [] { return 7; });
  EXPECT_EQ(constant(), 7);
}

// Two threads taking the same two locks in opposite orders, many times.
TYPED_TEST(Locked, SeveralLocksAreTakenWithoutDeadlock) {
  auto a = this->make(0);
  auto b = this->make(1);
  long total = 0;
  auto forward = fasteners::locked(*a, *b, [&] { ++total; });
  auto backward = fasteners::locked(*b, *a, [&] { ++total; });
  finishes_or_abort("locked() in opposite orders", [&] {
    std::thread one([&] {
      for (int i = 0; i < 300; ++i) forward();
    });
    std::thread two([&] {
      for (int i = 0; i < 300; ++i) backward();
    });
    one.join();
    two.join();
  });
  EXPECT_EQ(total, 600);
}

// The lock really excludes: unlocked increments from many threads get lost.
TYPED_TEST(Locked, CallsExcludeEachOther) {
  auto lock = this->make();
  long total = 0;
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  auto add = fasteners::locked(*lock, [&](long n) {
    if (inside.fetch_add(1) != 0) ++overlaps;
    total += n;
    std::this_thread::yield();
    inside.fetch_sub(1);
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(total, 2000);
}

// --- locked(&T::lock..., fn): the object's own locks ---------------------------------

template <class L>
class account {
 public:
  template <class... A>
  explicit account(const std::tuple<A...>& args, const std::tuple<A...>& audit_args)
      : lock_(std::make_from_tuple<L>(args)), audit_lock_(std::make_from_tuple<L>(audit_args)) {}

  int deposit(int amount) {
    // fasteners' assert_i_am_locked, asked from elsewhere.
    locked_during_call = held_exclusively_elsewhere(lock_);
    audit_locked_during_call = held_exclusively_elsewhere(audit_lock_);
    balance_ += amount;
    return balance_;
  }
  int balance() const {
    locked_during_call = held_exclusively_elsewhere(lock_);
    return balance_;
  }
  void fail() { throw std::runtime_error("broken"); }

  mutable L lock_;
  mutable L audit_lock_;
  mutable bool locked_during_call = false;
  mutable bool audit_locked_during_call = false;

 private:
  int balance_ = 0;
};

template <class L>
std::unique_ptr<account<L>> make_account(const temp_dir& dir) {
  return std::make_unique<account<L>>(lock_maker<L>::args(dir, 100), lock_maker<L>::args(dir, 101));
}

TYPED_TEST(Locked, MemberFormLocksTheObjectsOwnLock) {
  auto acct = make_account<TypeParam>(this->dir_);
  auto deposit = fasteners::locked(&account<TypeParam>::lock_, &account<TypeParam>::deposit);
  EXPECT_EQ(deposit(*acct, 5), 5);  // by reference
  EXPECT_TRUE(acct->locked_during_call);
  EXPECT_FALSE(acct->audit_locked_during_call);
  EXPECT_FALSE(held_exclusively_elsewhere(acct->lock_));
  acct->locked_during_call = false;
  EXPECT_EQ(deposit(acct.get(), 5), 10);  // by pointer
  EXPECT_TRUE(acct->locked_during_call);
  acct->locked_during_call = false;
  EXPECT_EQ(deposit(acct, 1), 11);  // by smart pointer
  EXPECT_TRUE(acct->locked_during_call);
}

TYPED_TEST(Locked, MemberFormWithSeveralLocksAndALambda) {
  auto acct = make_account<TypeParam>(this->dir_);
  auto both = fasteners::locked(&account<TypeParam>::lock_, &account<TypeParam>::audit_lock_,
                                [](account<TypeParam>& a, int amount) { return a.deposit(amount); });
  EXPECT_EQ(both(*acct, 3), 3);
  EXPECT_TRUE(acct->locked_during_call);
  EXPECT_TRUE(acct->audit_locked_during_call);
  EXPECT_FALSE(held_exclusively_elsewhere(acct->lock_));
  EXPECT_FALSE(held_exclusively_elsewhere(acct->audit_lock_));
}

TYPED_TEST(Locked, MemberFormOnAConstObject) {
  auto acct = make_account<TypeParam>(this->dir_);
  const account<TypeParam>& view = *acct;
  auto balance = fasteners::locked(&account<TypeParam>::lock_, &account<TypeParam>::balance);
  EXPECT_EQ(balance(view), 0);
  EXPECT_TRUE(acct->locked_during_call);
  const account<TypeParam>* pointer = acct.get();
  acct->locked_during_call = false;
  EXPECT_EQ(balance(pointer), 0);
  EXPECT_TRUE(acct->locked_during_call);
}

TYPED_TEST(Locked, MemberFormReleasesOnException) {
  auto acct = make_account<TypeParam>(this->dir_);
  auto fail = fasteners::locked(&account<TypeParam>::lock_, &account<TypeParam>::fail);
  EXPECT_THROW(fail(*acct), std::runtime_error);
  EXPECT_FALSE(held_exclusively_elsewhere(acct->lock_));
}

// --- read_locked / write_locked ---------------------------------------------------------

TYPED_TEST(Locked, ReadLockedTakesTheLockSharedIfItCanElseExclusively) {
  auto lock = this->make();
  bool excludes_writers = false;
  bool shared_with_readers = false;
  auto read = fasteners::read_locked(*lock, [&] {
    excludes_writers = held_exclusively_elsewhere(*lock);
    if constexpr (has_shared_mode<TypeParam>) shared_with_readers = can_read_elsewhere(*lock);
  });
  read();
  EXPECT_TRUE(excludes_writers);
  EXPECT_EQ(shared_with_readers, has_shared_mode<TypeParam>);
  EXPECT_FALSE(held_exclusively_elsewhere(*lock));
}

TYPED_TEST(ReadWriteLocked, WriteLockedExcludesReaders) {
  auto lock = this->make();
  auto write = fasteners::write_locked(*lock, [&](int x) { return std::pair(can_read_elsewhere(*lock), x); });
  const auto [readable, x] = write(3);
  EXPECT_FALSE(readable);
  EXPECT_EQ(x, 3);
  EXPECT_TRUE(can_read_elsewhere(*lock));
}

TYPED_TEST(ReadWriteLocked, ReadersOfReadLockedRunTogether) {
  auto lock = this->make();
  fasteners::test::latch both_inside(2);
  auto read = fasteners::read_locked(*lock, [&] { return both_inside.arrive_and_wait(); });
  // Without a shared hold the second reader would wait for the first forever.
  auto other = std::async(std::launch::async, [&] { return read(); });
  EXPECT_TRUE(read());
  EXPECT_TRUE(other.get());
}

TYPED_TEST(ReadWriteLocked, ReleasesOnException) {
  auto lock = this->make();
  auto read = fasteners::read_locked(*lock, [] { throw std::runtime_error("broken"); });
  auto write = fasteners::write_locked(*lock, [] { throw std::logic_error("broken"); });
  EXPECT_THROW(read(), std::runtime_error);
  EXPECT_THROW(write(), std::logic_error);
  EXPECT_FALSE(held_exclusively_elsewhere(*lock));
}

// fasteners' test_read_write_locked, with the object's own reader_writer_lock.
struct rw_locked_object {
  fasteners::reader_writer_lock lock;
  fasteners::reader_writer_lock::owner_kind owner() const { return lock.owner(); }
};

TEST(ReadWriteLockedMembers, OwnerIsReaderOrWriterDuringTheCallAndNoneAfter) {
  using owner_kind = fasteners::reader_writer_lock::owner_kind;
  rw_locked_object object;
  auto as_reader = fasteners::read_locked(&rw_locked_object::lock, &rw_locked_object::owner);
  auto as_writer = fasteners::write_locked(&rw_locked_object::lock, &rw_locked_object::owner);
  EXPECT_EQ(as_writer(object), owner_kind::writer);
  EXPECT_EQ(as_reader(object), owner_kind::readers);
  EXPECT_EQ(as_reader(&object), owner_kind::readers);
  EXPECT_EQ(object.owner(), owner_kind::none);
}

}  // namespace
