// Timeouts and deadlines at the edges of what a caller can pass: every lock
// here makes at least one attempt, treats a deadline that is already past (by
// however much) as one try, and one beyond what steady_clock can hold as no
// deadline at all, whatever the clock, rep and period (detail/deadline.hpp).
#include <fasteners/detail/deadline.hpp>
#include <fasteners/interprocess_lock.hpp>
#include <fasteners/reader_writer_lock.hpp>
#include <fasteners/thread_annotations.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <ratio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using std::chrono::duration;
using std::chrono::hours;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;
using std::chrono::time_point;
namespace detail = fasteners::detail;

constexpr double infinity = std::numeric_limits<double>::infinity();
const double not_a_number = std::numeric_limits<double>::quiet_NaN();

// ---- The conversions themselves -------------------------------------------

TEST(DeadlineConversions, DurationsSaturateInsteadOfOverflowing) {
  using detail::saturation;
  using detail::to_steady_duration;
  EXPECT_EQ(to_steady_duration(hours::max(), true).where, saturation::above);
  EXPECT_EQ(to_steady_duration(hours::min(), true).where, saturation::below);
  EXPECT_EQ(to_steady_duration(seconds::max(), false).where, saturation::above);
  EXPECT_EQ(to_steady_duration(nanoseconds::max(), true).value, nanoseconds::max());
  EXPECT_EQ(to_steady_duration(nanoseconds::max(), true).where, saturation::none);
  EXPECT_EQ(to_steady_duration(nanoseconds::min(), true).value, nanoseconds::min());
  EXPECT_EQ(to_steady_duration(duration<unsigned long long>::max(), true).where, saturation::above);
  EXPECT_EQ(to_steady_duration(duration<std::uint64_t, std::nano>::max(), true).where, saturation::above);
  EXPECT_EQ(to_steady_duration(duration<long long, std::ratio<1, 3>>::max(), true).where, saturation::above);
  EXPECT_EQ(to_steady_duration(duration<double>(infinity), true).where, saturation::above);
  EXPECT_EQ(to_steady_duration(duration<double>(-infinity), true).where, saturation::below);
  EXPECT_EQ(to_steady_duration(duration<double>(1e300), true).where, saturation::above);
  EXPECT_EQ(to_steady_duration(duration<float>::max(), true).where, saturation::above);
  EXPECT_EQ(to_steady_duration(duration<double>(std::numeric_limits<double>::lowest()), true).where, saturation::below);
  // NaN promises no wait: it counts as the distant past.
  EXPECT_EQ(to_steady_duration(duration<double>(not_a_number), true).where, saturation::below);
}

TEST(DeadlineConversions, FiniteValuesAreRoundedUpNeverEarly) {
  using detail::to_steady_duration;
  const duration<long long, std::ratio<1, 3>> third(1);
  EXPECT_EQ(to_steady_duration(third, true).value, nanoseconds(333333334));
  EXPECT_EQ(to_steady_duration(third, false).value, nanoseconds(333333333));
  EXPECT_EQ(to_steady_duration(-third, true).value, nanoseconds(-333333333));
  EXPECT_EQ(to_steady_duration(-third, false).value, nanoseconds(-333333334));
  EXPECT_EQ(to_steady_duration(duration<long long, std::ratio<1, 3>>(10000000000), true).value,
            nanoseconds(3333333333333333334));
  EXPECT_EQ(to_steady_duration(duration<double, std::milli>(1.5), true).value, nanoseconds(1500000));
  EXPECT_EQ(to_steady_duration(duration<double, std::nano>(0.25), true).value, nanoseconds(1));
  EXPECT_EQ(to_steady_duration(std::chrono::microseconds(-1), true).value, nanoseconds(-1000));
  EXPECT_EQ(to_steady_duration(hours(2), true).value, hours(2));
}

// A clock whose readings are far outside steady_clock's range.
struct far_clock {
  using rep = long long;
  using period = std::ratio<1>;
  using duration = std::chrono::duration<rep, period>;
  using time_point = std::chrono::time_point<far_clock>;
  [[maybe_unused]] static constexpr bool is_steady = false;
  static time_point now() noexcept { return time_point(duration(std::numeric_limits<rep>::max() / 4)); }
};

TEST(DeadlineConversions, TimeLeftSaturatesOnEveryClock) {
  using detail::saturation;
  using detail::time_left;
  const auto now = system_clock::now();
  EXPECT_EQ(time_left(system_clock::time_point::min(), now).where, saturation::below);
  EXPECT_EQ(time_left(system_clock::time_point::max(), now).where, saturation::above);
  EXPECT_EQ(time_left(time_point<system_clock, seconds>::max(), now).where, saturation::above);
  EXPECT_EQ(time_left(time_point<system_clock, seconds>::min(), now).where, saturation::below);
  EXPECT_EQ(time_left(time_point<system_clock, hours>(hours(24 * 365 * 1000)), now).where, saturation::above);
  EXPECT_EQ(time_left(time_point<system_clock, duration<double>>(duration<double>(infinity)), now).where,
            saturation::above);
  EXPECT_EQ(time_left(time_point<system_clock, duration<double>>(duration<double>(not_a_number)), now).where,
            saturation::below);
  EXPECT_EQ(time_left(now + 5s, now).value, 5s);
  EXPECT_EQ(time_left(now - 5s, now).value, -5s);
  const auto far_now = far_clock::now();
  EXPECT_EQ(time_left(far_now + far_clock::duration(5), far_now).value, 5s);
  EXPECT_EQ(time_left(far_now - far_clock::duration(5), far_now).value, -5s);
  EXPECT_EQ(time_left(far_clock::time_point::max(), far_now).where, saturation::above);
  EXPECT_EQ(time_left(far_clock::time_point::min(), far_now).where, saturation::below);
}

TEST(DeadlineConversions, SteadyDeadlines) {
  const auto max = steady_clock::time_point::max();
  EXPECT_EQ(detail::steady_deadline_after(hours::max()), max);
  EXPECT_EQ(detail::steady_deadline_after(nanoseconds::max()), max);
  EXPECT_EQ(detail::steady_deadline_after(duration<double>(infinity)), max);
  for (const auto past : {detail::steady_deadline_after(nanoseconds::min()),
                          detail::steady_deadline_after(duration<double>(not_a_number)),
                          detail::steady_deadline_after(duration<double>(-infinity))}) {
    EXPECT_LE(past, steady_clock::now());
  }
  const auto before = steady_clock::now();
  const auto in_a_second = detail::steady_deadline_after(1s);
  EXPECT_GE(in_a_second, before + 1s);
  EXPECT_LE(in_a_second, steady_clock::now() + 1s);
  EXPECT_EQ(detail::steady_deadline_at(time_point<steady_clock, seconds>::max()), max);
  EXPECT_EQ(detail::steady_deadline_at(time_point<steady_clock, duration<double>>::max()), max);
  EXPECT_EQ(detail::steady_deadline_at(time_point<steady_clock, hours>(hours(24 * 365 * 1000))), max);
  EXPECT_EQ(detail::steady_deadline_at(time_point<steady_clock, seconds>::min()), steady_clock::time_point::min());
  const auto nan_deadline =
      detail::steady_deadline_at(time_point<steady_clock, duration<double>>(duration<double>(not_a_number)));
  EXPECT_LE(nan_deadline, steady_clock::now());
}

// ---- Every lock, with a holder in another thread ----------------------------

// Each subject is one lock and the side a call takes, plus what the holder
// thread takes to be in its way.
struct interprocess_exclusive {
  explicit interprocess_exclusive(const std::filesystem::path& path) : mine(path), theirs(path) {}
  void hold() { theirs.lock(); }
  void let_go() { theirs.unlock(); }
  template <class R, class P>
  bool try_for(const duration<R, P>& d) {
    return mine.try_lock_for(d);
  }
  template <class C, class D>
  bool try_until(const time_point<C, D>& t) {
    return mine.try_lock_until(t);
  }
  void release() { mine.unlock(); }
  fasteners::interprocess_lock mine, theirs;
};

struct interprocess_write_side {
  explicit interprocess_write_side(const std::filesystem::path& path) : mine(path), theirs(path) {}
  void hold() { theirs.lock_shared(); }  // a reader is in the writer's way
  void let_go() { theirs.unlock_shared(); }
  template <class R, class P>
  bool try_for(const duration<R, P>& d) {
    return mine.try_lock_for(d);
  }
  template <class C, class D>
  bool try_until(const time_point<C, D>& t) {
    return mine.try_lock_until(t);
  }
  void release() { mine.unlock(); }
  fasteners::interprocess_reader_writer_lock mine, theirs;
};

struct interprocess_read_side {
  explicit interprocess_read_side(const std::filesystem::path& path) : mine(path), theirs(path) {}
  void hold() { theirs.lock(); }
  void let_go() { theirs.unlock(); }
  template <class R, class P>
  bool try_for(const duration<R, P>& d) {
    return mine.try_lock_shared_for(d);
  }
  template <class C, class D>
  bool try_until(const time_point<C, D>& t) {
    return mine.try_lock_shared_until(t);
  }
  void release() { mine.unlock_shared(); }
  fasteners::interprocess_reader_writer_lock mine, theirs;
};

// The holder and the caller take turns with one lock from two threads, which
// clang's analysis cannot follow.
struct inter_thread_write_side {
  explicit inter_thread_write_side(const std::filesystem::path&) {}
  void hold() FASTENERS_NO_THREAD_SAFETY_ANALYSIS { lock.lock_shared(); }
  void let_go() FASTENERS_NO_THREAD_SAFETY_ANALYSIS { lock.unlock_shared(); }
  template <class R, class P>
  bool try_for(const duration<R, P>& d) {
    return lock.try_lock_for(d);
  }
  template <class C, class D>
  bool try_until(const time_point<C, D>& t) {
    return lock.try_lock_until(t);
  }
  void release() FASTENERS_NO_THREAD_SAFETY_ANALYSIS { lock.unlock(); }
  fasteners::reader_writer_lock lock;
};

struct inter_thread_read_side {
  explicit inter_thread_read_side(const std::filesystem::path&) {}
  void hold() FASTENERS_NO_THREAD_SAFETY_ANALYSIS { lock.lock(); }
  void let_go() FASTENERS_NO_THREAD_SAFETY_ANALYSIS { lock.unlock(); }
  template <class R, class P>
  bool try_for(const duration<R, P>& d) {
    return lock.try_lock_shared_for(d);
  }
  template <class C, class D>
  bool try_until(const time_point<C, D>& t) {
    return lock.try_lock_shared_until(t);
  }
  void release() FASTENERS_NO_THREAD_SAFETY_ANALYSIS { lock.unlock_shared(); }
  fasteners::reader_writer_lock lock;
};

// Takes the subject's holder side in a thread of its own, and lets go when
// told or after `at_most`, whichever comes first.
template <class Subject>
class held_elsewhere {
 public:
  held_elsewhere(Subject& subject, std::chrono::milliseconds at_most)
      : thread_([this, &subject, at_most] {
          subject.hold();
          std::unique_lock<std::mutex> guard(mutex_);
          held_ = true;
          changed_.notify_all();
          changed_.wait_for(guard, at_most, [this] { return stop_; });
          subject.let_go();
        }) {
    std::unique_lock<std::mutex> guard(mutex_);
    changed_.wait(guard, [this] { return held_; });
  }
  ~held_elsewhere() {
    {
      std::lock_guard<std::mutex> guard(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  held_elsewhere(const held_elsewhere&) = delete;
  held_elsewhere& operator=(const held_elsewhere&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool held_ = false;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

template <class Subject>
using attempt = std::pair<const char*, std::function<bool(Subject&)>>;

template <class Subject>
class Deadlines : public ::testing::Test {
 protected:
  fasteners::test::temp_dir dir_;
  Subject subject_{dir_ / "lock"};
};

using subjects = ::testing::Types<interprocess_exclusive, interprocess_write_side, interprocess_read_side,
                                  inter_thread_write_side, inter_thread_read_side>;
class subject_names {
 public:
  template <class T>
  static std::string GetName(int) {
    if (std::is_same_v<T, interprocess_exclusive>) return "interprocess_lock";
    if (std::is_same_v<T, interprocess_write_side>) return "interprocess_rw_write";
    if (std::is_same_v<T, interprocess_read_side>) return "interprocess_rw_read";
    if (std::is_same_v<T, inter_thread_write_side>) return "reader_writer_lock_write";
    return "reader_writer_lock_read";
  }
};
TYPED_TEST_SUITE(Deadlines, subjects, subject_names);

// Past deadlines, however far past and on whatever clock, are one try: with
// the lock held elsewhere (for up to 30 s) the call answers false at once.
TYPED_TEST(Deadlines, PastDeadlinesAreOneTry) {
  using S = TypeParam;
  const std::vector<attempt<S>> attempts = {
      {"until system_clock min", [](S& s) { return s.try_until(system_clock::time_point::min()); }},
      {"until system_clock/seconds min", [](S& s) { return s.try_until(time_point<system_clock, seconds>::min()); }},
      {"until steady_clock min", [](S& s) { return s.try_until(steady_clock::time_point::min()); }},
      {"until steady_clock/seconds min", [](S& s) { return s.try_until(time_point<steady_clock, seconds>::min()); }},
      {"until system_clock/double -infinity",
       [](S& s) { return s.try_until(time_point<system_clock, duration<double>>(duration<double>(-infinity))); }},
      {"until system_clock/double NaN",
       [](S& s) { return s.try_until(time_point<system_clock, duration<double>>(duration<double>(not_a_number))); }},
      {"until steady_clock/double NaN",
       [](S& s) { return s.try_until(time_point<steady_clock, duration<double>>(duration<double>(not_a_number))); }},
      {"until a day ago", [](S& s) { return s.try_until(system_clock::now() - hours(24)); }},
      {"until steady now", [](S& s) { return s.try_until(steady_clock::now()); }},
      {"for nanoseconds min", [](S& s) { return s.try_for(nanoseconds::min()); }},
      {"for hours min", [](S& s) { return s.try_for(hours::min()); }},
      {"for zero", [](S& s) { return s.try_for(seconds(0)); }},
      {"for unsigned zero", [](S& s) { return s.try_for(duration<unsigned>(0)); }},
      {"for double -infinity", [](S& s) { return s.try_for(duration<double>(-infinity)); }},
      {"for double lowest", [](S& s) { return s.try_for(duration<double>(std::numeric_limits<double>::lowest())); }},
      {"for double NaN", [](S& s) { return s.try_for(duration<double>(not_a_number)); }},
  };
  for (const auto& [name, call] : attempts) {
    held_elsewhere<S> holder(this->subject_, 10s);
    const auto start = steady_clock::now();
    const bool got = call(this->subject_);
    const auto took = steady_clock::now() - start;
    EXPECT_FALSE(got) << name << ": it waited for the holder instead of trying once";
    EXPECT_LT(took, 8s) << name;
    if (got) this->subject_.release();
  }
}

// Deadlines beyond what steady_clock can hold are no deadline: the call waits
// for the holder (who lets go after 60 ms) and gets the lock.
TYPED_TEST(Deadlines, UnrepresentableDeadlinesWaitForEver) {
  using S = TypeParam;
  const std::vector<attempt<S>> attempts = {
      {"until system_clock/seconds max", [](S& s) { return s.try_until(time_point<system_clock, seconds>::max()); }},
      {"until steady_clock/seconds max", [](S& s) { return s.try_until(time_point<steady_clock, seconds>::max()); }},
      {"until system_clock max", [](S& s) { return s.try_until(system_clock::time_point::max()); }},
      {"until steady_clock max", [](S& s) { return s.try_until(steady_clock::time_point::max()); }},
      {"until system_clock/double infinity",
       [](S& s) { return s.try_until(time_point<system_clock, duration<double>>(duration<double>(infinity))); }},
      {"until steady_clock/double max",
       [](S& s) { return s.try_until(time_point<steady_clock, duration<double>>::max()); }},
      {"until the year 3000",
       [](S& s) { return s.try_until(time_point<system_clock, hours>(hours(24 * 365 * 1030))); }},
      {"for hours max", [](S& s) { return s.try_for(hours::max()); }},
      {"for seconds max", [](S& s) { return s.try_for(seconds::max()); }},
      {"for nanoseconds max", [](S& s) { return s.try_for(nanoseconds::max()); }},
      {"for unsigned long long seconds max", [](S& s) { return s.try_for(duration<unsigned long long>::max()); }},
      {"for thirds max", [](S& s) { return s.try_for(duration<long long, std::ratio<1, 3>>::max()); }},
      {"for double infinity", [](S& s) { return s.try_for(duration<double>(infinity)); }},
      {"for double 1e300", [](S& s) { return s.try_for(duration<double>(1e300)); }},
      {"for float max", [](S& s) { return s.try_for(duration<float>::max()); }},
      {"for 30 s", [](S& s) { return s.try_for(30s); }},
      {"until 30 s from now", [](S& s) { return s.try_until(system_clock::now() + 30s); }},
  };
  for (const auto& [name, call] : attempts) {
    held_elsewhere<S> holder(this->subject_, 60ms);
    const bool got = call(this->subject_);
    EXPECT_TRUE(got) << name << ": it gave up while the lock was held for 60 ms";
    if (got) this->subject_.release();
  }
}

// Finite timeouts in odd units are waited out in full, never cut short.
TYPED_TEST(Deadlines, FiniteTimeoutsInAnyUnitAreWaitedOut) {
  using S = TypeParam;
  const std::vector<attempt<S>> attempts = {
      {"for 0.05 s as double", [](S& s) { return s.try_for(duration<double>(0.05)); }},
      {"for 1/20 s", [](S& s) { return s.try_for(duration<long long, std::ratio<1, 20>>(1)); }},
      {"for 50 ms as unsigned", [](S& s) { return s.try_for(duration<unsigned, std::milli>(50)); }},
      {"until 50 ms from now as system_clock/double",
       [](S& s) {
         return s.try_until(time_point<system_clock, duration<double>>(system_clock::now().time_since_epoch()) +
                            duration<double>(0.05));
       }},
      {"until 50 ms from now on steady_clock/double",
       [](S& s) {
         return s.try_until(time_point<steady_clock, duration<double>>(steady_clock::now().time_since_epoch()) +
                            duration<double>(0.05));
       }},
  };
  for (const auto& [name, call] : attempts) {
    held_elsewhere<S> holder(this->subject_, 10s);
    const auto start = steady_clock::now();
    const bool got = call(this->subject_);
    const auto took = steady_clock::now() - start;
    EXPECT_FALSE(got) << name;
    // system_clock may be stepped by a few ms under us; steady_clock may not.
    EXPECT_GE(took, 40ms) << name;
    EXPECT_LT(took, 8s) << name;
    if (got) this->subject_.release();
  }
}

}  // namespace
