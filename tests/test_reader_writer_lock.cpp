// reader_writer_lock: the behaviours of Python fasteners' tests/test_lock.py,
// and the promises of reader_writer_lock.hpp.
#include <fasteners/reader_writer_lock.hpp>

#include "inter_thread_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

// These tests take the lock reentrantly and release it unheld on purpose;
// clang's thread-safety analysis (rightly, for ordinary mutexes) calls that a bug.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wthread-safety-analysis"
#endif

namespace {

using fasteners::reader_writer_lock;
using fasteners::test::eventually;
using fasteners::test::finishes_or_abort;
using fasteners::test::latch;
using owner_kind = reader_writer_lock::owner_kind;
using namespace std::chrono_literals;

bool other_thread_can_write(reader_writer_lock& lock) { return !fasteners::test::held_exclusively_elsewhere(lock); }
bool other_thread_can_read(reader_writer_lock& lock) { return fasteners::test::can_read_elsewhere(lock); }

template <class Fn>
std::errc error_of(Fn fn) {
  try {
    fn();
  } catch (const std::system_error& e) {
    if (e.code().category() == std::generic_category()) return static_cast<std::errc>(e.code().value());
    ADD_FAILURE() << "unexpected error category: " << e.what();
    return std::errc{};
  }
  ADD_FAILURE() << "no std::system_error thrown";
  return std::errc{};
}

// --- Exclusion, under load ---------------------------------------------------

// One record per hold: a global sequence number taken on entry and on exit.
// Sequence numbers are taken inside the hold, so with a correct lock a
// writer's interval contains no other holder's number.
struct hold {
  bool writer;
  std::uint64_t enter;
  std::uint64_t exit;
};

bool overlaps(const hold& a, const hold& b) { return a.enter < b.exit && b.enter < a.exit; }

void expect_writers_alone(const std::vector<hold>& holds) {
  std::size_t bad = 0;
  for (std::size_t i = 0; i < holds.size(); ++i) {
    if (!holds[i].writer) continue;
    for (std::size_t j = 0; j < holds.size(); ++j) {
      if (i != j && overlaps(holds[i], holds[j])) ++bad;
    }
  }
  EXPECT_EQ(bad, 0u) << "holds that overlapped a writer";
}

// Many threads, each taking the lock many times, reading or writing at
// random, some holding it across a yield or a short sleep.
std::vector<hold> run_mixed_load(int threads, int rounds, int write_percent) {
  reader_writer_lock lock;
  std::atomic<std::uint64_t> sequence{0};
  std::atomic<int> writers_inside{0};
  std::atomic<int> readers_inside{0};
  std::atomic<int> violations{0};
  std::mutex holds_mutex;
  std::vector<hold> holds;
  latch start(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::minstd_rand random(static_cast<unsigned>(t) + 1);
      std::vector<hold> mine;
      start.arrive_and_wait();
      for (int i = 0; i < rounds; ++i) {
        const bool writer = static_cast<int>(random() % 100) < write_percent;
        hold h{writer, 0, 0};
        if (writer) {
          auto guard = lock.write_lock();
          h.enter = sequence.fetch_add(1);
          if (writers_inside.fetch_add(1) != 0 || readers_inside.load() != 0) ++violations;
          if (i % 16 == 0) std::this_thread::sleep_for(50us);
          std::this_thread::yield();
          writers_inside.fetch_sub(1);
          h.exit = sequence.fetch_add(1);
        } else {
          auto guard = lock.read_lock();
          h.enter = sequence.fetch_add(1);
          readers_inside.fetch_add(1);
          if (writers_inside.load() != 0) ++violations;
          if (i % 16 == 0) std::this_thread::sleep_for(50us);
          std::this_thread::yield();
          readers_inside.fetch_sub(1);
          h.exit = sequence.fetch_add(1);
        }
        mine.push_back(h);
      }
      std::lock_guard<std::mutex> g(holds_mutex);
      holds.insert(holds.end(), mine.begin(), mine.end());
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(lock.owner(), owner_kind::none);
  return holds;
}

TEST(ReaderWriterLock, NoTwoWriters) {
  const auto holds = run_mixed_load(8, 400, 100);
  EXPECT_EQ(holds.size(), 8u * 400u);
  expect_writers_alone(holds);
}

TEST(ReaderWriterLock, NoReadersBesideAWriter) {
  const auto holds = run_mixed_load(12, 400, 50);
  EXPECT_EQ(holds.size(), 12u * 400u);
  expect_writers_alone(holds);
}

TEST(ReaderWriterLock, NoReadersBesideAWriterMostlyReads) {
  const auto holds = run_mixed_load(12, 400, 5);
  expect_writers_alone(holds);
}

// fasteners' _spawn_variation: one hold per thread, all started together.
void spawn_variation(int readers, int writers) {
  reader_writer_lock lock;
  std::atomic<std::uint64_t> sequence{0};
  std::mutex holds_mutex;
  std::vector<hold> holds;
  latch start(readers + writers);
  std::vector<std::thread> threads;
  for (int i = 0; i < readers + writers; ++i) {
    const bool writer = i >= readers;
    threads.emplace_back([&, writer, i] {
      start.arrive_and_wait();
      hold h{writer, 0, 0};
      {
        std::unique_lock<reader_writer_lock> w(lock, std::defer_lock);
        std::shared_lock<reader_writer_lock> r(lock, std::defer_lock);
        writer ? w.lock() : r.lock();
        h.enter = sequence.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(1 + i % 5));
        h.exit = sequence.fetch_add(1);
      }
      std::lock_guard<std::mutex> g(holds_mutex);
      holds.push_back(h);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(holds.size(), static_cast<std::size_t>(readers + writers));
  EXPECT_EQ(std::count_if(holds.begin(), holds.end(), [](const hold& h) { return h.writer; }), writers);
  expect_writers_alone(holds);
}

TEST(ReaderWriterLock, MultiReaderMultiWriter) { spawn_variation(10, 10); }
TEST(ReaderWriterLock, MultiReaderSingleWriter) { spawn_variation(9, 1); }
TEST(ReaderWriterLock, MultiWriter) { spawn_variation(0, 10); }

// More readers at once than the slot table has room for near their homes,
// so some are counted in the state word: the writer must wait for all.
TEST(ReaderWriterLock, WriterWaitsForEveryOneOfManyReaders) {
  reader_writer_lock lock;
  constexpr int readers = 48;
  latch holding(readers + 1);
  latch release(1);
  std::vector<std::thread> threads;
  for (int i = 0; i < readers; ++i) {
    threads.emplace_back([&] {
      auto r = lock.read_lock();
      holding.arrive_and_wait();
      release.wait();
    });
  }
  ASSERT_TRUE(holding.arrive_and_wait());
  EXPECT_EQ(lock.owner(), owner_kind::readers);
  EXPECT_FALSE(other_thread_can_write(lock));
  std::atomic<bool> written{false};
  std::thread writer([&] {
    auto w = lock.write_lock();
    written = true;
  });
  ASSERT_TRUE(eventually([&] { return lock.has_pending_writers(); }));
  EXPECT_FALSE(written.load());
  release.count_down();
  for (auto& t : threads) t.join();
  writer.join();
  EXPECT_TRUE(written.load());
  EXPECT_EQ(lock.owner(), owner_kind::none);
}

// --- Holders that throw ------------------------------------------------------

TEST(ReaderWriterLock, WriterAbortLeavesLockClean) {
  reader_writer_lock lock;
  EXPECT_EQ(lock.owner(), owner_kind::none);
  EXPECT_THROW(
      {
        auto w = lock.write_lock();
        EXPECT_EQ(lock.owner(), owner_kind::writer);
        throw std::runtime_error("broken");
      },
      std::runtime_error);
  EXPECT_EQ(lock.owner(), owner_kind::none);
  EXPECT_FALSE(lock.is_writer());
  EXPECT_TRUE(other_thread_can_write(lock));
}

TEST(ReaderWriterLock, ReaderAbortLeavesLockClean) {
  reader_writer_lock lock;
  EXPECT_THROW(
      {
        auto r = lock.read_lock();
        EXPECT_EQ(lock.owner(), owner_kind::readers);
        throw std::runtime_error("broken");
      },
      std::runtime_error);
  EXPECT_EQ(lock.owner(), owner_kind::none);
  EXPECT_FALSE(lock.is_reader());
  EXPECT_TRUE(other_thread_can_write(lock));
}

// fasteners' test_double_reader_abort / test_reader_chaotic / test_writer_chaotic:
// 20 tasks on a pool, half of them throwing; every task that should finish does.
enum class task { double_bad_reader, bad_reader, good_reader, bad_writer, good_writer };

std::vector<owner_kind> run_chaos(const std::vector<task>& tasks) {
  reader_writer_lock lock;
  std::mutex seen_mutex;
  std::vector<owner_kind> seen;
  auto record = [&] {
    std::lock_guard<std::mutex> g(seen_mutex);
    seen.push_back(lock.owner());
  };
  latch start(static_cast<int>(tasks.size()));
  std::vector<std::thread> threads;
  for (task t : tasks) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      try {
        switch (t) {
          case task::double_bad_reader: {
            auto outer = lock.read_lock();
            auto inner = lock.read_lock();
            throw std::runtime_error("broken");
          }
          case task::bad_reader: {
            auto r = lock.read_lock();
            throw std::runtime_error("broken");
          }
          case task::good_reader: {
            auto r = lock.read_lock();
            record();
            break;
          }
          case task::bad_writer: {
            auto w = lock.write_lock();
            throw std::runtime_error("broken");
          }
          case task::good_writer: {
            auto w = lock.write_lock();
            record();
            break;
          }
        }
      } catch (const std::runtime_error&) {
      }
    });
  }
  finishes_or_abort("chaotic tasks", [&] {
    for (auto& t : threads) t.join();
  });
  EXPECT_EQ(lock.owner(), owner_kind::none);
  EXPECT_FALSE(lock.has_pending_writers());
  return seen;
}

std::ptrdiff_t count_of(const std::vector<owner_kind>& seen, owner_kind k) {
  return std::count(seen.begin(), seen.end(), k);
}

TEST(ReaderWriterLock, DoubleReaderAbort) {
  std::vector<task> tasks;
  for (int i = 0; i < 20; ++i) tasks.push_back(i % 2 == 0 ? task::double_bad_reader : task::good_writer);
  const auto seen = run_chaos(tasks);
  EXPECT_EQ(count_of(seen, owner_kind::writer), 10);
  EXPECT_EQ(seen.size(), 10u);
}

TEST(ReaderWriterLock, ReaderChaotic) {
  std::vector<task> tasks;
  for (int i = 0; i < 20; ++i) {
    tasks.push_back(i % 2 != 0 ? task::good_writer : (i % 4 == 0 ? task::bad_reader : task::good_reader));
  }
  const auto seen = run_chaos(tasks);
  EXPECT_EQ(count_of(seen, owner_kind::writer), 10);
  EXPECT_EQ(count_of(seen, owner_kind::readers), 5);
}

TEST(ReaderWriterLock, WriterChaotic) {
  std::vector<task> tasks;
  for (int i = 0; i < 20; ++i) {
    tasks.push_back(i % 2 != 0 ? task::good_reader : (i % 4 == 0 ? task::bad_writer : task::good_writer));
  }
  const auto seen = run_chaos(tasks);
  EXPECT_EQ(count_of(seen, owner_kind::writer), 5);
  EXPECT_EQ(count_of(seen, owner_kind::readers), 10);
}

// --- Reentrancy ---------------------------------------------------------------

// fasteners' test_double_reader_writer: a reader reads again while a writer
// waits, and the writer goes after it.
TEST(ReaderWriterLock, ReentrantReadIsNotBlockedByAWaitingWriter) {
  reader_writer_lock lock;
  std::mutex order_mutex;
  std::vector<owner_kind> order;
  latch reading(1);
  std::thread reader([&] {
    auto outer = lock.read_lock();
    reading.count_down();
    ASSERT_TRUE(eventually([&] { return lock.has_pending_writers(); }));
    // With writers waiting a fresh reader must wait, but this one already reads.
    auto inner = lock.read_lock();
    std::lock_guard<std::mutex> g(order_mutex);
    order.push_back(lock.owner());
  });
  ASSERT_TRUE(reading.wait());
  std::thread writer([&] {
    auto w = lock.write_lock();
    std::lock_guard<std::mutex> g(order_mutex);
    order.push_back(lock.owner());
  });
  finishes_or_abort("reentrant read with a writer waiting", [&] {
    reader.join();
    writer.join();
  });
  EXPECT_EQ(order, (std::vector<owner_kind>{owner_kind::readers, owner_kind::writer}));
}

TEST(ReaderWriterLock, ReentrantTryReadSucceedsWithAWriterWaiting) {
  reader_writer_lock lock;
  lock.lock_shared();
  std::thread writer([&] { auto w = lock.write_lock(); });
  ASSERT_TRUE(eventually([&] { return lock.has_pending_writers(); }));
  EXPECT_TRUE(lock.try_lock_shared());
  EXPECT_TRUE(lock.try_lock_shared_for(0s));
  // ...while a thread that does not read yet is held back.
  EXPECT_FALSE(other_thread_can_read(lock));
  lock.unlock_shared();
  lock.unlock_shared();
  lock.unlock_shared();
  finishes_or_abort("writer after the reader left", [&] { writer.join(); });
}

// fasteners issue #86: one thread takes the write lock and then a read lock
// inside it, another thread only writes; this used to deadlock after a few
// rounds once the second writer was queued.
TEST(ReaderWriterLock, Issue86WriterTakingReadLockWithAnotherWriterQueuedDoesNotDeadlock) {
  reader_writer_lock lock;
  int shared_value = 0;
  finishes_or_abort("issue #86 reproducer", [&] {
    std::thread first([&] {
      for (int i = 0; i < 300; ++i) {
        auto w = lock.write_lock();
        auto r = lock.read_lock();
        ++shared_value;
      }
    });
    std::thread second([&] {
      for (int i = 0; i < 300; ++i) {
        auto w = lock.write_lock();
        ++shared_value;
      }
    });
    first.join();
    second.join();
  });
  EXPECT_EQ(shared_value, 600);
}

TEST(ReaderWriterLock, WriterReaderWriter) {
  reader_writer_lock lock;
  auto w = lock.write_lock();
  EXPECT_TRUE(lock.is_writer());
  {
    auto r = lock.read_lock();
    EXPECT_TRUE(lock.is_reader());
    {
      auto w2 = lock.write_lock();
      EXPECT_TRUE(lock.is_writer());
    }
    EXPECT_TRUE(lock.is_writer());
  }
  EXPECT_TRUE(lock.is_writer());
  EXPECT_FALSE(lock.is_reader());
}

TEST(ReaderWriterLock, SingleReaderWriter) {
  reader_writer_lock lock;
  {
    auto r = lock.read_lock();
    EXPECT_TRUE(lock.is_reader());
    EXPECT_FALSE(lock.is_writer());
  }
  {
    auto w = lock.write_lock();
    EXPECT_TRUE(lock.is_writer());
    EXPECT_FALSE(lock.is_reader());
  }
  {
    auto r = lock.read_lock();
    EXPECT_TRUE(lock.is_reader());
  }
  EXPECT_FALSE(lock.is_reader());
  EXPECT_FALSE(lock.is_writer());
  EXPECT_FALSE(lock.is_writer(false));
}

TEST(ReaderWriterLock, ReaderToWriterIsRefusedNotAHang) {
  reader_writer_lock lock;
  finishes_or_abort("a reader asking for the write lock", [&] {
    auto r = lock.read_lock();
    EXPECT_EQ(error_of([&] { lock.lock(); }), std::errc::resource_deadlock_would_occur);
    EXPECT_EQ(error_of([&] { (void)lock.try_lock_for(10s); }), std::errc::resource_deadlock_would_occur);
    EXPECT_EQ(error_of([&] { (void)lock.try_lock_until(std::chrono::system_clock::now() + 10s); }),
              std::errc::resource_deadlock_would_occur);
    EXPECT_FALSE(lock.try_lock());
    EXPECT_FALSE(lock.try_lock_for(0s));
    EXPECT_FALSE(lock.try_lock_for(-1s));
    EXPECT_TRUE(lock.is_reader());
    EXPECT_FALSE(lock.is_writer());
    EXPECT_EQ(lock.owner(), owner_kind::readers);
    r.unlock();
    EXPECT_FALSE(lock.is_reader());
    EXPECT_FALSE(lock.is_writer());
  });
  EXPECT_TRUE(other_thread_can_write(lock));
}

TEST(ReaderWriterLock, WriterToReader) {
  reader_writer_lock lock;
  {
    auto w = lock.write_lock();
    {
      auto r = lock.read_lock();
      EXPECT_TRUE(lock.is_writer());
      EXPECT_TRUE(lock.is_reader());
      EXPECT_EQ(lock.owner(), owner_kind::writer);
      EXPECT_FALSE(other_thread_can_read(lock));
    }
    EXPECT_TRUE(lock.is_writer());
    EXPECT_FALSE(lock.is_reader());
  }
  EXPECT_FALSE(lock.is_writer());
  EXPECT_FALSE(lock.is_reader());
  EXPECT_TRUE(other_thread_can_write(lock));
}

// A writer that lets go of the write lock while it still reads keeps reading.
TEST(ReaderWriterLock, ReleasingTheWriteLockUnderAReadLockDowngrades) {
  reader_writer_lock lock;
  lock.lock();
  lock.lock_shared();
  lock.unlock();
  EXPECT_FALSE(lock.is_writer());
  EXPECT_TRUE(lock.is_reader());
  EXPECT_EQ(lock.owner(), owner_kind::readers);
  EXPECT_TRUE(other_thread_can_read(lock));
  EXPECT_FALSE(other_thread_can_write(lock));
  EXPECT_FALSE(lock.try_lock());
  lock.unlock_shared();
  EXPECT_EQ(lock.owner(), owner_kind::none);
  EXPECT_TRUE(other_thread_can_write(lock));
}

// --- unlock_and_lock_shared: an atomic downgrade ------------------------------

TEST(ReaderWriterLock, UnlockAndLockSharedTurnsTheWriteLockIntoARead) {
  reader_writer_lock lock;
  lock.lock();
  lock.unlock_and_lock_shared();
  EXPECT_FALSE(lock.is_writer());
  EXPECT_TRUE(lock.is_reader());
  EXPECT_EQ(lock.owner(), owner_kind::readers);
  EXPECT_TRUE(other_thread_can_read(lock));
  EXPECT_FALSE(other_thread_can_write(lock));
  lock.unlock_shared();
  EXPECT_EQ(lock.owner(), owner_kind::none);
  EXPECT_TRUE(other_thread_can_write(lock));
  EXPECT_EQ(error_of([&] { lock.unlock_shared(); }), std::errc::operation_not_permitted);
}

// A thread hammering try_lock() must never get in while the downgrade runs:
// the write lock becomes a read lock without the lock ever being free.
TEST(ReaderWriterLock, UnlockAndLockSharedLetsNoWriterInBetween) {
  reader_writer_lock lock;
  std::atomic<bool> downgrader_holds{false};
  std::atomic<bool> stop{false};
  std::atomic<int> intrusions{0};
  std::atomic<long> attempts{0};
  std::thread hammer([&] {
    while (!stop.load()) {
      attempts.fetch_add(1, std::memory_order_relaxed);
      if (lock.try_lock()) {
        if (downgrader_holds.load()) intrusions.fetch_add(1);
        lock.unlock();
      }
    }
  });
  long seen = 0;
  for (int round = 0; round < 2000; ++round) {
    // Each round only once the hammer has tried again, so that the two interleave.
    while (attempts.load() == seen) std::this_thread::yield();
    seen = attempts.load();
    lock.lock();
    downgrader_holds = true;
    lock.unlock_and_lock_shared();
    ASSERT_TRUE(lock.is_reader());
    ASSERT_FALSE(lock.is_writer());
    downgrader_holds = false;
    lock.unlock_shared();
  }
  stop = true;
  hammer.join();
  EXPECT_EQ(intrusions.load(), 0);
  EXPECT_GE(attempts.load(), 2000);
  EXPECT_EQ(lock.owner(), owner_kind::none);
}

// Readers held back by the write lock may come in as soon as it is a read lock.
TEST(ReaderWriterLock, UnlockAndLockSharedLetsWaitingReadersJoin) {
  reader_writer_lock lock;
  lock.lock();
  std::atomic<bool> read{false};
  std::atomic<bool> release{false};
  std::thread reader([&] {
    auto r = lock.read_lock();
    read = true;
    while (!release.load()) std::this_thread::yield();
  });
  std::this_thread::sleep_for(20ms);  // let the reader go to sleep
  EXPECT_FALSE(read.load());
  lock.unlock_and_lock_shared();
  EXPECT_TRUE(eventually([&] { return read.load(); }));
  EXPECT_TRUE(lock.is_reader());
  release = true;
  reader.join();
  lock.unlock_shared();
  EXPECT_EQ(lock.owner(), owner_kind::none);
}

TEST(ReaderWriterLock, UnlockAndLockSharedWithoutTheWriteLockThrows) {
  reader_writer_lock lock;
  EXPECT_EQ(error_of([&] { lock.unlock_and_lock_shared(); }), std::errc::operation_not_permitted);
  {
    auto r = lock.read_lock();
    EXPECT_EQ(error_of([&] { lock.unlock_and_lock_shared(); }), std::errc::operation_not_permitted);
    EXPECT_TRUE(lock.is_reader());
  }
  auto w = lock.write_lock();
  std::async(std::launch::async, [&] {
    EXPECT_EQ(error_of([&] { lock.unlock_and_lock_shared(); }), std::errc::operation_not_permitted);
  }).get();
  EXPECT_TRUE(lock.is_writer());
  EXPECT_FALSE(lock.is_reader());
}

// Taken twice, the write lock is given back once and a read hold added.
TEST(ReaderWriterLock, UnlockAndLockSharedUndoesOneOfReentrantWriteLocks) {
  reader_writer_lock lock;
  lock.lock();
  lock.lock();
  lock.unlock_and_lock_shared();
  EXPECT_TRUE(lock.is_writer());
  EXPECT_TRUE(lock.is_reader());
  lock.unlock();
  EXPECT_FALSE(lock.is_writer());
  EXPECT_TRUE(lock.is_reader());
  EXPECT_FALSE(other_thread_can_write(lock));
  lock.unlock_shared();
  EXPECT_EQ(lock.owner(), owner_kind::none);
}

TEST(ReaderWriterLock, DoubleWriter) {
  reader_writer_lock lock;
  {
    auto w = lock.write_lock();
    EXPECT_FALSE(lock.is_reader());
    EXPECT_TRUE(lock.is_writer());
    {
      auto w2 = lock.write_lock();
      EXPECT_TRUE(lock.is_writer());
    }
    EXPECT_TRUE(lock.is_writer());
    EXPECT_FALSE(other_thread_can_read(lock));
  }
  EXPECT_FALSE(lock.is_reader());
  EXPECT_FALSE(lock.is_writer());
}

TEST(ReaderWriterLock, DoubleReader) {
  reader_writer_lock lock;
  {
    auto r = lock.read_lock();
    EXPECT_TRUE(lock.is_reader());
    EXPECT_FALSE(lock.is_writer());
    {
      auto r2 = lock.read_lock();
      EXPECT_TRUE(lock.is_reader());
    }
    EXPECT_TRUE(lock.is_reader());
  }
  EXPECT_FALSE(lock.is_reader());
  EXPECT_FALSE(lock.is_writer());
}

TEST(ReaderWriterLock, ReadReentrancyIsCounted) {
  reader_writer_lock lock;
  lock.lock_shared();
  lock.lock_shared();
  EXPECT_TRUE(lock.try_lock_shared());
  lock.unlock_shared();
  lock.unlock_shared();
  EXPECT_TRUE(lock.is_reader());
  EXPECT_FALSE(other_thread_can_write(lock));
  lock.unlock_shared();
  EXPECT_FALSE(lock.is_reader());
  EXPECT_TRUE(other_thread_can_write(lock));
  EXPECT_EQ(error_of([&] { lock.unlock_shared(); }), std::errc::operation_not_permitted);
}

TEST(ReaderWriterLock, WriteReentrancyIsCounted) {
  reader_writer_lock lock;
  lock.lock();
  EXPECT_TRUE(lock.try_lock());
  EXPECT_TRUE(lock.try_lock_for(1ms));
  lock.unlock();
  lock.unlock();
  EXPECT_TRUE(lock.is_writer());
  EXPECT_FALSE(other_thread_can_read(lock));
  lock.unlock();
  EXPECT_FALSE(lock.is_writer());
  EXPECT_TRUE(other_thread_can_read(lock));
  EXPECT_EQ(error_of([&] { lock.unlock(); }), std::errc::operation_not_permitted);
}

// --- Misuse is reported ---------------------------------------------------------

TEST(ReaderWriterLock, ReleasingWithoutHoldingThrows) {
  reader_writer_lock lock;
  EXPECT_EQ(error_of([&] { lock.unlock(); }), std::errc::operation_not_permitted);
  EXPECT_EQ(error_of([&] { lock.unlock_shared(); }), std::errc::operation_not_permitted);
  // Holding the other kind does not count.
  {
    auto r = lock.read_lock();
    EXPECT_EQ(error_of([&] { lock.unlock(); }), std::errc::operation_not_permitted);
  }
  {
    auto w = lock.write_lock();
    EXPECT_EQ(error_of([&] { lock.unlock_shared(); }), std::errc::operation_not_permitted);
  }
  EXPECT_EQ(lock.owner(), owner_kind::none);
}

TEST(ReaderWriterLock, ReleasingAnotherThreadsHoldThrows) {
  reader_writer_lock lock;
  auto w = lock.write_lock();
  auto r = lock.read_lock();
  std::async(std::launch::async, [&] {
    EXPECT_EQ(error_of([&] { lock.unlock(); }), std::errc::operation_not_permitted);
    EXPECT_EQ(error_of([&] { lock.unlock_shared(); }), std::errc::operation_not_permitted);
  }).get();
  EXPECT_TRUE(lock.is_writer());
  EXPECT_TRUE(lock.is_reader());
}

// --- Writers asleep are served in arrival order; they hold back new readers -------

TEST(ReaderWriterLock, WaitingWritersAreServedInArrivalOrder) {
  reader_writer_lock lock;
  constexpr int writers = 5;
  std::mutex order_mutex;
  std::vector<int> order;
  std::vector<std::thread> threads;
  {
    auto holder = lock.write_lock();
    for (int i = 0; i < writers; ++i) {
      threads.emplace_back([&, i] {
        auto w = lock.write_lock();
        std::lock_guard<std::mutex> g(order_mutex);
        order.push_back(i);
      });
      // Writer i is queued before writer i+1 starts.
      const auto queued = static_cast<std::size_t>(i + 1);
      ASSERT_TRUE(eventually([&] { return fasteners::detail::queued_writers(lock) == queued; }));
    }
  }
  finishes_or_abort("queued writers", [&] {
    for (auto& t : threads) t.join();
  });
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(ReaderWriterLock, WaitingWriterHoldsBackNewReaders) {
  reader_writer_lock lock;
  std::mutex order_mutex;
  std::vector<char> order;
  auto note = [&](char c) {
    std::lock_guard<std::mutex> g(order_mutex);
    order.push_back(c);
  };
  lock.lock_shared();
  std::thread writer([&] {
    auto w = lock.write_lock();
    note('w');
  });
  ASSERT_TRUE(eventually([&] { return lock.has_pending_writers(); }));
  EXPECT_FALSE(other_thread_can_read(lock));
  EXPECT_FALSE(std::async(std::launch::async, [&] { return lock.try_lock_shared_for(20ms); }).get());
  std::thread reader([&] {
    auto r = lock.read_lock();
    note('r');
  });
  std::this_thread::sleep_for(20ms);  // let the reader queue up behind the writer
  lock.unlock_shared();
  finishes_or_abort("writer then reader", [&] {
    writer.join();
    reader.join();
  });
  EXPECT_EQ(order, (std::vector<char>{'w', 'r'}));
}

// When a writer lets go, a writer queued before a reader goes first, though
// both are woken together.
TEST(ReaderWriterLock, QueuedWriterGoesBeforeReadersQueuedAfterIt) {
  for (int round = 0; round < 10; ++round) {
    reader_writer_lock lock;
    std::mutex order_mutex;
    std::vector<char> order;
    auto note = [&](char c) {
      std::lock_guard<std::mutex> g(order_mutex);
      order.push_back(c);
    };
    lock.lock();
    std::thread writer([&] {
      auto w = lock.write_lock();
      note('w');
    });
    ASSERT_TRUE(eventually([&] { return lock.has_pending_writers(); }));
    std::thread reader([&] {
      auto r = lock.read_lock();
      note('r');
    });
    std::this_thread::sleep_for(10ms);  // let the reader go to sleep too
    lock.unlock();
    finishes_or_abort("writer and reader after a writer", [&] {
      writer.join();
      reader.join();
    });
    ASSERT_EQ(order, (std::vector<char>{'w', 'r'})) << "round " << round;
  }
}

// --- Eventual fairness -----------------------------------------------------------

// Threads that take the lock again the moment they let go keep a sleeping
// waiter out if a release only ever wakes it to try: by the time it runs the
// lock is mostly taken again, and a reader is not even woken while a writer
// sleeps. The promise is that about once a millisecond a release hands the
// lock straight to the longest waiter instead, so no waiter is overtaken for
// much longer than that. Without that hand-over (checked by disabling it)
// the reader test below fails every time, the reader waiting for seconds or
// for ever; the writer test about every other time. With it, each wait is a
// millisecond or two plus scheduling delays. The bounds are for a loaded
// two-core machine.
void hammer_while(reader_writer_lock& lock, std::chrono::microseconds hold, std::atomic<bool>& stop,
                  std::atomic<long>& rounds) {
  while (!stop.load()) {
    lock.lock();
    const auto until = std::chrono::steady_clock::now() + hold;
    while (std::chrono::steady_clock::now() < until) {
    }
    lock.unlock();
    rounds.fetch_add(1, std::memory_order_relaxed);
  }
}

// What a waiter may suffer, as medians over its waits: how long it waits,
// and how many times the hammers take the lock meanwhile.
struct wait_bounds {
  std::chrono::milliseconds median_wait;
  long median_overtakes;
};

// `hammer_count` writers take the lock back to back, holding it for `hold`
// each time; a waiter takes it (`take`) 15 times, sleeping in between so that
// every time it finds the lock taken and has to queue. Medians, so that one
// long delay in scheduling does not fail the test.
template <class Take>
void expect_waits_bounded_while_writers_hammer(int hammer_count, std::chrono::microseconds hold, wait_bounds bounds,
                                               Take take) {
  constexpr std::size_t waits = 15;
  constexpr auto give_up = 10s;  // without the hand-over a reader may wait for ever
  reader_writer_lock lock;
  std::atomic<bool> stop{false};
  std::atomic<long> rounds{0};
  std::vector<std::thread> hammers;
  for (int i = 0; i < hammer_count; ++i) hammers.emplace_back([&] { hammer_while(lock, hold, stop, rounds); });
  ASSERT_TRUE(eventually([&] { return rounds.load() > 20; }));
  std::vector<std::chrono::microseconds> waited;
  std::vector<long> overtakes;
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    while (waited.size() < waits && !stop.load()) {
      std::this_thread::sleep_for(2ms);
      const long rounds_before = rounds.load();
      const auto start = std::chrono::steady_clock::now();
      take(lock);
      waited.push_back(std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start));
      overtakes.push_back(rounds.load() - rounds_before);
    }
    done = true;
  });
  const bool finished =
      eventually([&] { return done.load(); }, std::chrono::duration_cast<std::chrono::milliseconds>(give_up));
  stop = true;
  for (auto& h : hammers) h.join();
  waiter.join();
  ASSERT_TRUE(finished) << "the waiter got its turns only once the others stopped";
  ASSERT_EQ(waited.size(), waits);
  std::sort(waited.begin(), waited.end());
  std::sort(overtakes.begin(), overtakes.end());
  const long median_us = static_cast<long>(waited[waits / 2].count());
  const long longest_us = static_cast<long>(waited.back().count());
  std::ostringstream seen;
  seen << "median wait " << median_us << " us, longest " << longest_us << " us; median overtakes "
       << overtakes[waits / 2] << ", most " << overtakes.back();
  EXPECT_LE(median_us, static_cast<long>(std::chrono::microseconds(bounds.median_wait).count())) << seen.str();
  EXPECT_LE(overtakes[waits / 2], bounds.median_overtakes) << seen.str();
}

// The writer waiting is woken at every release, but mostly wakes too late
// to find the lock free: the hammer has taken it again. (Not always, so
// without the fair hand-over this fails only about every other run on two
// cores, the waiter then being overtaken tens of times.) The holds are as
// long as the fair-turn period, so a fair turn is due at the first release
// after the waiter queues: it is overtaken once per hammer.
TEST(ReaderWriterLock, WriterWaitingBehindBargingWritersGetsItsTurn) {
  for (int hammers : {1, 2}) {
    SCOPED_TRACE(hammers);
    expect_waits_bounded_while_writers_hammer(hammers, 1000us, wait_bounds{20ms, 4}, [](reader_writer_lock& lock) {
      lock.lock();
      lock.unlock();
    });
  }
}

// Readers wait while writers do, and one of four hammers always waits: only
// a fair turn lets the reader in. Without it the reader waits for seconds or
// for ever.
TEST(ReaderWriterLock, ReaderWaitingBehindBargingWritersGetsItsTurn) {
  expect_waits_bounded_while_writers_hammer(4, 20us, wait_bounds{20ms, 100000}, [](reader_writer_lock& lock) {
    lock.lock_shared();
    lock.unlock_shared();
  });
}

// A writer that gives up (times out) must not keep holding readers back.
TEST(ReaderWriterLock, TimedOutWriterLetsReadersIn) {
  reader_writer_lock lock;
  lock.lock_shared();
  EXPECT_FALSE(std::async(std::launch::async, [&] { return lock.try_lock_for(30ms); }).get());
  EXPECT_FALSE(lock.has_pending_writers());
  EXPECT_TRUE(other_thread_can_read(lock));
  lock.unlock_shared();
  EXPECT_TRUE(other_thread_can_write(lock));
}

// Readers asleep behind a writer that gives up while it drains must wake.
TEST(ReaderWriterLock, ReadersBehindATimedOutWriterAreWoken) {
  reader_writer_lock lock;
  lock.lock_shared();
  std::atomic<bool> read{false};
  std::thread writer([&] { EXPECT_FALSE(lock.try_lock_for(300ms)); });
  ASSERT_TRUE(eventually([&] { return lock.has_pending_writers(); }));
  std::thread reader([&] {
    auto r = lock.read_lock();
    read = true;
  });
  finishes_or_abort("reader behind a timed-out writer", [&] {
    writer.join();
    reader.join();
  });
  EXPECT_TRUE(read.load());
  lock.unlock_shared();
}

// --- Timeouts ----------------------------------------------------------------------

TEST(ReaderWriterLock, TimedLocksGiveUpWhileHeldAndSucceedOnceFree) {
  reader_writer_lock lock;
  {
    auto w = lock.write_lock();
    std::async(std::launch::async, [&] {
      EXPECT_FALSE(lock.try_lock_for(20ms));
      EXPECT_FALSE(lock.try_lock_shared_for(20ms));
      EXPECT_FALSE(lock.try_lock_until(std::chrono::steady_clock::now() + 20ms));
      EXPECT_FALSE(lock.try_lock_shared_until(std::chrono::system_clock::now() + 20ms));
      EXPECT_FALSE(lock.try_lock_for(0s));
      EXPECT_FALSE(lock.try_lock_shared_for(-5s));
    }).get();
  }
  std::async(std::launch::async, [&] {
    ASSERT_TRUE(lock.try_lock_for(0s));
    lock.unlock();
    ASSERT_TRUE(lock.try_lock_shared_until(std::chrono::system_clock::now() - 1s));
    lock.unlock_shared();
    ASSERT_TRUE(lock.try_lock_for(std::chrono::hours(1)));
    lock.unlock();
  }).get();
}

TEST(ReaderWriterLock, TimedWaiterGetsTheLockWhenReleased) {
  reader_writer_lock lock;
  lock.lock();
  auto reader = std::async(std::launch::async, [&] {
    const bool got = lock.try_lock_shared_for(fasteners::test::deadlock_timeout);
    if (got) lock.unlock_shared();
    return got;
  });
  auto writer = std::async(std::launch::async, [&] {
    const bool got = lock.try_lock_for(fasteners::test::deadlock_timeout);
    if (got) lock.unlock();
    return got;
  });
  ASSERT_TRUE(eventually([&] { return lock.has_pending_writers(); }));
  lock.unlock();
  EXPECT_TRUE(reader.get());
  EXPECT_TRUE(writer.get());
}

// --- Standard glue -------------------------------------------------------------------

TEST(ReaderWriterLock, WorksWithConditionVariableAny) {
  reader_writer_lock lock;
  std::condition_variable_any cv;
  bool ready = false;
  std::thread producer([&] {
    std::unique_lock<reader_writer_lock> w(lock);
    ready = true;
    cv.notify_all();
  });
  {
    std::unique_lock<reader_writer_lock> w(lock);
    EXPECT_TRUE(cv.wait_for(w, fasteners::test::deadlock_timeout, [&] { return ready; }));
    EXPECT_TRUE(lock.is_writer());
  }
  producer.join();
  {
    std::shared_lock<reader_writer_lock> r(lock);
    EXPECT_TRUE(cv.wait_for(r, 1ms, [&] { return ready; }));
    EXPECT_TRUE(lock.is_reader());
  }
}

TEST(ReaderWriterLock, ScopedLockOfTwoDoesNotDeadlockWithReversedOrder) {
  reader_writer_lock a, b;
  std::atomic<int> total{0};
  finishes_or_abort("scoped_lock in opposite orders", [&] {
    std::thread one([&] {
      for (int i = 0; i < 500; ++i) {
        std::scoped_lock both(a, b);
        total.fetch_add(1, std::memory_order_relaxed);
      }
    });
    std::thread two([&] {
      for (int i = 0; i < 500; ++i) {
        std::scoped_lock both(b, a);
        total.fetch_add(1, std::memory_order_relaxed);
      }
    });
    one.join();
    two.join();
  });
  EXPECT_EQ(total.load(), 1000);
}

TEST(ReaderWriterLock, GuardsCanBeReleasedEarly) {
  reader_writer_lock lock;
  auto w = lock.write_lock();
  w.unlock();
  EXPECT_FALSE(lock.is_writer());
  auto r = lock.read_lock();
  r.unlock();
  EXPECT_FALSE(lock.is_reader());
  fasteners::write_guard<reader_writer_lock> wg(lock);
  EXPECT_TRUE(lock.is_writer());
}

// --- Many locks, many threads ---------------------------------------------------------

// One thread reading more locks at once than it keeps records for inline.
TEST(ReaderWriterLock, OneThreadCanReadManyLocksAtOnce) {
  constexpr int count = 20;
  std::vector<std::unique_ptr<reader_writer_lock>> locks;
  for (int i = 0; i < count; ++i) locks.push_back(std::make_unique<reader_writer_lock>());
  for (auto& l : locks) l->lock_shared();
  for (auto& l : locks) l->lock_shared();  // reentrant, found again
  for (auto& l : locks) {
    EXPECT_TRUE(l->is_reader());
    EXPECT_FALSE(other_thread_can_write(*l));
  }
  for (auto& l : locks) l->unlock_shared();
  for (int i = 0; i < count; i += 2) locks[static_cast<std::size_t>(i)]->unlock_shared();
  for (int i = 0; i < count; ++i) {
    EXPECT_EQ(locks[static_cast<std::size_t>(i)]->is_reader(), i % 2 == 1) << i;
    EXPECT_EQ(other_thread_can_write(*locks[static_cast<std::size_t>(i)]), i % 2 == 0) << i;
  }
  for (int i = 1; i < count; i += 2) locks[static_cast<std::size_t>(i)]->unlock_shared();
  for (auto& l : locks) EXPECT_EQ(l->owner(), owner_kind::none);
}

// Whoever takes the lock next may destroy it at once: the thread that let it
// go must not touch it after its release. (ASan reports it if it does.)
TEST(ReaderWriterLock, LockMayBeDestroyedByTheNextHolder) {
  for (int round = 0; round < 200; ++round) {
    auto* lock = new reader_writer_lock;
    lock->lock_shared();
    std::thread writer([lock] {
      lock->lock();
      lock->unlock();
      delete lock;
    });
    while (!lock->has_pending_writers()) std::this_thread::yield();
    lock->unlock_shared();
    writer.join();
  }
  for (int round = 0; round < 200; ++round) {
    auto* lock = new reader_writer_lock;
    lock->lock();
    std::thread reader([lock] {
      lock->lock_shared();
      lock->unlock_shared();
      delete lock;
    });
    std::this_thread::yield();
    lock->unlock();
    reader.join();
  }
}

// Writers keep two counters equal; readers must never see them differ, with
// timed and try attempts giving up all the while.
TEST(ReaderWriterLock, ReadersNeverSeeAHalfWrite) {
  reader_writer_lock lock;
  long first = 0, second = 0;
  std::atomic<int> torn{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000 && !stop; ++i) {
        switch ((t + i) % 6) {
          case 0: {
            auto w = lock.write_lock();
            ++first;
            std::this_thread::yield();
            ++second;
            break;
          }
          case 1:
            if (lock.try_lock_for(100us)) {
              ++first;
              ++second;
              lock.unlock();
            }
            break;
          case 2:
            if (lock.try_lock_shared_for(100us)) {
              if (first != second) ++torn;
              lock.unlock_shared();
            }
            break;
          case 3:
            if (lock.try_lock()) {
              ++first;
              ++second;
              lock.unlock();
            }
            break;
          default: {
            auto r = lock.read_lock();
            if (first != second) ++torn;
            break;
          }
        }
      }
    });
  }
  finishes_or_abort("mixed load", [&] {
    for (auto& t : threads) t.join();
  });
  EXPECT_EQ(torn.load(), 0);
  EXPECT_EQ(first, second);
  EXPECT_GT(first, 0);
  EXPECT_EQ(lock.owner(), owner_kind::none);
  EXPECT_FALSE(lock.has_pending_writers());
}

// Like std::shared_mutex: neither copied nor moved, and the guards are the
// standard ones.
static_assert(!std::is_copy_constructible_v<reader_writer_lock>);
static_assert(!std::is_move_constructible_v<reader_writer_lock>);
static_assert(std::is_default_constructible_v<reader_writer_lock>);
// The header promises 16 bytes: the queue of sleepers lives in the parking lot, not in the lock.
static_assert(sizeof(reader_writer_lock) <= 16);
static_assert(
    std::is_same_v<decltype(std::declval<reader_writer_lock&>().read_lock()), std::shared_lock<reader_writer_lock>>);
static_assert(
    std::is_same_v<decltype(std::declval<reader_writer_lock&>().write_lock()), std::unique_lock<reader_writer_lock>>);

TEST(ReaderWriterLock, ReadLockAndWriteLockReturnStandardGuardsThatHoldAndRelease) {
  reader_writer_lock lock;
  {
    std::shared_lock<reader_writer_lock> r = lock.read_lock();
    EXPECT_TRUE(r.owns_lock());
    EXPECT_TRUE(lock.is_reader());
    EXPECT_EQ(lock.owner(), owner_kind::readers);
    r.unlock();  // the standard guard's own early release works
    EXPECT_FALSE(lock.is_reader());
  }
  {
    std::unique_lock<reader_writer_lock> w = lock.write_lock();
    EXPECT_TRUE(w.owns_lock());
    EXPECT_TRUE(lock.is_writer());
    EXPECT_EQ(lock.owner(), owner_kind::writer);
  }
  EXPECT_EQ(lock.owner(), owner_kind::none);
}

}  // namespace
