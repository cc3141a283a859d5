// Inter-process locks: real processes (the helper binary), real files.
#include <fasteners/interprocess_lock.hpp>
#include <fasteners/interprocess_locked.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using fasteners::interprocess_lock;
using fasteners::interprocess_reader_writer_lock;
using fasteners::test::child_process;
using fasteners::test::error_of;
using fasteners::test::helper_acquired;
using fasteners::test::helper_busy;
using fasteners::test::holder;
using fasteners::test::read_file;
using fasteners::test::run_helper;
using fasteners::test::temp_dir;
using fasteners::test::write_file;

TEST(InterprocessLock, ParentHoldsTenChildrenFailThenSucceedAfterRelease) {
  temp_dir dir;
  const auto path = dir / "lock";
  interprocess_lock lock(path);
  lock.lock();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_busy) << i;
  lock.unlock();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_acquired) << i;
}

TEST(InterprocessLock, ChildHoldsParentCannotTake) {
  temp_dir dir;
  const auto path = dir / "lock";
  holder h(path, "exclusive");
  interprocess_lock lock(path);
  EXPECT_FALSE(lock.try_lock());
  EXPECT_FALSE(lock.try_lock_for(0ms));
  h.release();
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
}

void count_across_processes(const std::string& object_mode) {
  temp_dir dir;
  const auto lock_path = dir / "counter.lock";
  const auto counter = dir / "counter";
  write_file(counter, "0");
  constexpr int processes = 4, threads = 2, increments = 300;
  std::vector<child_process> children;
  for (int p = 0; p < processes; ++p) {
    children.push_back(child_process::helper({"increment", lock_path.string(), counter.string(),
                                              std::to_string(threads), std::to_string(increments), object_mode}));
  }
  for (auto& c : children) {
    c.close_stdin();
    EXPECT_EQ(c.wait(), 0);
  }
  EXPECT_EQ(read_file(counter), std::to_string(processes * threads * increments));
}

TEST(InterprocessLock, FourProcessesTwoThreadsEachOwnObjectLoseNoIncrement) { count_across_processes("own-object"); }

TEST(InterprocessLock, FourProcessesTwoThreadsSharingOneObjectLoseNoIncrement) {
  count_across_processes("shared-object");
}

// Inside one process: a plain int guarded only by the lock. A lock that lets
// two threads in loses updates (and TSan reports the race).
TEST(InterprocessLock, ThreadsSharingOneObjectExcludeEachOther) {
  temp_dir dir;
  interprocess_lock lock(dir / "lock");
  long counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        std::lock_guard<interprocess_lock> guard(lock);
        const long seen = counter;
        std::this_thread::yield();
        counter = seen + 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 8000);
}

TEST(InterprocessLock, ThreadsWithSeparateObjectsOnOneFileExcludeEachOther) {
  temp_dir dir;
  const auto path = dir / "lock";
  long counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      interprocess_lock lock(path);
      for (int i = 0; i < 500; ++i) {
        std::lock_guard<interprocess_lock> guard(lock);
        const long seen = counter;
        std::this_thread::yield();
        counter = seen + 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 2000);
}

TEST(InterprocessLock, SeparateObjectsInOneProcessConflict) {
  temp_dir dir;
  interprocess_lock a(dir / "lock"), b(dir / "lock");
  a.lock();
  std::thread other([&] {
    EXPECT_FALSE(b.try_lock());
    EXPECT_FALSE(b.try_lock_for(50ms));
  });
  other.join();
  a.unlock();
  std::thread again([&] {
    EXPECT_TRUE(b.try_lock());
    b.unlock();
  });
  again.join();
}

void kill_holder_frees_lock(const std::string& kind) {
  temp_dir dir;
  const auto path = dir / "lock";
  holder h(path, kind);
  interprocess_lock lock(path);
  EXPECT_FALSE(lock.try_lock());
  h.child.kill_hard();
  EXPECT_EQ(h.child.wait(), 128 + 9);
  EXPECT_TRUE(lock.try_lock());  // the kernel released it as the holder died
  lock.unlock();
}

TEST(InterprocessLock, KillNineOfExclusiveHolderFreesLockAtOnce) { kill_holder_frees_lock("exclusive"); }
TEST(InterprocessLock, KillNineOfSharedHolderFreesLockAtOnce) { kill_holder_frees_lock("shared"); }

TEST(InterprocessLock, KillNineOfHolderWakesBlockedWaiter) {
  temp_dir dir;
  const auto path = dir / "lock";
  holder h(path, "exclusive");
  interprocess_lock lock(path);
  auto waiter = std::async(std::launch::async, [&] {
    lock.lock();
    lock.unlock();
    return true;
  });
  EXPECT_EQ(waiter.wait_for(100ms), std::future_status::timeout);
  h.child.kill_hard();
  ASSERT_EQ(waiter.wait_for(60s), std::future_status::ready);
  EXPECT_TRUE(waiter.get());
}

// ---- reader-writer across processes ----

TEST(InterprocessReaderWriterLock, ReadersInOtherProcessesCoexist) {
  temp_dir dir;
  const auto path = dir / "lock";
  holder reader(path, "shared");
  holder another(path, "shared");
  interprocess_reader_writer_lock rw(path);
  EXPECT_TRUE(rw.try_lock_shared());
  EXPECT_EQ(run_helper({"try", path.string(), "shared"}), helper_acquired);
  EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_busy);
  rw.unlock_shared();
  EXPECT_FALSE(rw.try_lock());
  reader.release();
  another.release();
  EXPECT_TRUE(rw.try_lock());
  rw.unlock();
}

TEST(InterprocessReaderWriterLock, WriterExcludesReadersAndWriters) {
  temp_dir dir;
  const auto path = dir / "lock";
  holder writer(path, "exclusive");
  interprocess_reader_writer_lock rw(path);
  EXPECT_FALSE(rw.try_lock_shared());
  EXPECT_FALSE(rw.try_lock());
  EXPECT_EQ(run_helper({"try", path.string(), "shared"}), helper_busy);
  writer.release();
  EXPECT_TRUE(rw.try_lock_shared());
  EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_busy);
  rw.unlock_shared();
}

TEST(InterprocessReaderWriterLock, ReadersInOtherProcessesNeverSeeATornRecord) {
  temp_dir dir;
  const auto lock_path = dir / "record.lock";
  const auto record = dir / "record";
  write_file(record, std::string(64, 'z'));
  auto writer = child_process::helper({"writer", lock_path.string(), record.string(), "150"});
  std::vector<child_process> readers;
  for (int i = 0; i < 3; ++i) {
    readers.push_back(child_process::helper({"reader", lock_path.string(), record.string(), "300"}));
  }
  EXPECT_EQ(writer.wait(), 0);
  for (auto& r : readers) EXPECT_EQ(r.wait(), 0) << r.read_all();
}

// The same check must fail without the lock: proves the scenario can tear.
TEST(InterprocessReaderWriterLock, TornRecordCheckDetectsUnlockedWriters) {
  temp_dir dir;
  const auto record = dir / "record";
  write_file(record, std::string(64, 'z'));
  // Each process gets its own lock file, so nothing excludes anything.
  auto writer = child_process::helper({"writer", (dir / "a.lock").string(), record.string(), "150"});
  bool torn = false;
  for (int round = 0; round < 20 && !torn; ++round) {
    auto reader = child_process::helper({"reader", (dir / "b.lock").string(), record.string(), "300"});
    torn = reader.wait() == 1;
  }
  EXPECT_EQ(writer.wait(), 0);
  EXPECT_TRUE(torn);
}

TEST(InterprocessReaderWriterLock, ThreadsShareReadsAndExcludeWrites) {
  temp_dir dir;
  interprocess_reader_writer_lock rw(dir / "lock");
  constexpr int thread_count = 4;
  std::atomic<int> readers{0}, max_readers{0}, missed_rendezvous{0};
  std::atomic<bool> overlap{false};
  auto note_reader = [&] {
    const int now = ++readers;
    int seen = max_readers.load();
    while (now > seen && !max_readers.compare_exchange_weak(seen, now)) {
    }
  };
  // First every thread reads at once: each waits, holding its read lock, for
  // the others to arrive. A lock that let only one reader in at a time would
  // keep the others out until the wait times out.
  std::mutex rendezvous_mutex;
  std::condition_variable all_arrived;
  int arrived = 0;
  auto rendezvous = [&] {
    std::unique_lock<std::mutex> guard(rendezvous_mutex);
    if (++arrived == thread_count) all_arrived.notify_all();
    return all_arrived.wait_for(guard, 10s, [&] { return arrived == thread_count; });
  };
  int value = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < thread_count; ++t) {
    threads.emplace_back([&, t] {
      {
        auto r = rw.read_lock();
        note_reader();
        if (!rendezvous()) ++missed_rendezvous;
        --readers;
      }
      for (int i = 0; i < 300; ++i) {
        if ((i + t) % 4 == 0) {
          auto w = rw.write_lock();
          if (readers.load() != 0) overlap = true;
          ++value;
        } else {
          auto r = rw.read_lock();
          note_reader();
          (void)value;
          --readers;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(missed_rendezvous.load(), 0) << "readers did not share the lock";
  EXPECT_EQ(max_readers.load(), thread_count);
  EXPECT_FALSE(overlap.load());
  EXPECT_EQ(value, 300);
}

TEST(InterprocessReaderWriterLock, ReadLockIsReentrantInOneThread) {
  temp_dir dir;
  interprocess_reader_writer_lock rw(dir / "lock");
  rw.lock_shared();
  rw.lock_shared();
  EXPECT_TRUE(rw.is_reader());
  rw.unlock_shared();
  EXPECT_TRUE(rw.is_reader());
  EXPECT_EQ(run_helper({"try", rw.path().string(), "exclusive"}), helper_busy);
  rw.unlock_shared();
  EXPECT_FALSE(rw.is_reader());
  EXPECT_EQ(run_helper({"try", rw.path().string(), "exclusive"}), helper_acquired);
}

// ---- self-deadlock ----

TEST(InterprocessLock, RelockingFromHolderThreadIsAnErrorNotAHang) {
  temp_dir dir;
  interprocess_lock lock(dir / "lock");
  lock.lock();
  EXPECT_EQ(error_of([&] { lock.lock(); }).code, std::errc::resource_deadlock_would_occur);
  EXPECT_FALSE(lock.try_lock());
  EXPECT_FALSE(lock.try_lock_for(0s));
  EXPECT_EQ(error_of([&] { (void)lock.try_lock_for(10s); }).code, std::errc::resource_deadlock_would_occur);
  EXPECT_TRUE(lock.owns_lock());
  lock.unlock();
}

TEST(InterprocessLock, LockingTheSameFileThroughAnotherObjectFromHolderIsAnError) {
  temp_dir dir;
  interprocess_lock a(dir / "lock"), b(dir / "lock");
  a.lock();
  EXPECT_EQ(error_of([&] { b.lock(); }).code, std::errc::resource_deadlock_would_occur);
  EXPECT_FALSE(b.try_lock());
  a.unlock();
  b.lock();
  b.unlock();
}

TEST(InterprocessReaderWriterLock, SelfDeadlockCasesAreErrors) {
  temp_dir dir;
  interprocess_reader_writer_lock rw(dir / "lock"), other(dir / "lock");
  rw.lock();  // exclusive, then:
  EXPECT_EQ(error_of([&] { rw.lock(); }).code, std::errc::resource_deadlock_would_occur);
  EXPECT_EQ(error_of([&] { rw.lock_shared(); }).code, std::errc::resource_deadlock_would_occur);
  EXPECT_EQ(error_of([&] { other.lock_shared(); }).code, std::errc::resource_deadlock_would_occur);
  EXPECT_FALSE(rw.try_lock_shared());
  EXPECT_FALSE(other.try_lock_shared());
  rw.unlock();
  rw.lock_shared();  // shared, then exclusive:
  EXPECT_EQ(error_of([&] { rw.lock(); }).code, std::errc::resource_deadlock_would_occur);
  EXPECT_EQ(error_of([&] { other.lock(); }).code, std::errc::resource_deadlock_would_occur);
  EXPECT_FALSE(rw.try_lock());
  EXPECT_FALSE(other.try_lock());
  EXPECT_TRUE(other.try_lock_shared());  // shared beside shared is fine
  other.unlock_shared();
  rw.unlock_shared();
}

TEST(InterprocessLock, ExclusiveThroughAnInterprocessLockAndReadThroughARwLockOnOneFileIsAnError) {
  temp_dir dir;
  interprocess_lock lock(dir / "lock");
  interprocess_reader_writer_lock rw(dir / "lock");
  lock.lock();
  EXPECT_EQ(error_of([&] { rw.lock_shared(); }).code, std::errc::resource_deadlock_would_occur);
  lock.unlock();
}

// ---- timeouts ----

TEST(InterprocessLock, TryLockForGivesUpAfterAboutItsTimeout) {
  temp_dir dir;
  const auto path = dir / "lock";
  holder h(path, "exclusive");
  interprocess_lock lock(path);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(lock.try_lock_for(300ms));
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 290ms);
  EXPECT_LT(waited, 30s);
  const auto deadline = std::chrono::system_clock::now() + 200ms;
  EXPECT_FALSE(lock.try_lock_until(deadline));
  EXPECT_GE(std::chrono::system_clock::now(), deadline);
  h.release();
}

TEST(InterprocessLock, ZeroAndNegativeTimeoutsStillTryOnce) {
  temp_dir dir;
  interprocess_lock lock(dir / "lock");
  EXPECT_TRUE(lock.try_lock_for(0ms));
  lock.unlock();
  EXPECT_TRUE(lock.try_lock_for(-5s));
  lock.unlock();
  EXPECT_TRUE(lock.try_lock_until(std::chrono::steady_clock::now() - 1h));
  lock.unlock();
}

TEST(InterprocessLock, TimedWaiterGetsTheLockOnceReleased) {
  temp_dir dir;
  const auto path = dir / "lock";
  holder h(path, "exclusive");
  interprocess_lock lock(path);
  auto waiter = std::async(std::launch::async, [&] {
    const bool got = lock.try_lock_for(120s);
    if (got) lock.unlock();
    return got;
  });
  EXPECT_EQ(waiter.wait_for(200ms), std::future_status::timeout);
  h.release();
  ASSERT_EQ(waiter.wait_for(60s), std::future_status::ready);
  EXPECT_TRUE(waiter.get());
}

TEST(InterprocessLock, BlockingWaiterGetsTheLockOnceReleased) {
  temp_dir dir;
  const auto path = dir / "lock";
  holder h(path, "exclusive");
  interprocess_reader_writer_lock rw(path);
  auto waiter = std::async(std::launch::async, [&] {
    rw.lock_shared();
    rw.unlock_shared();
    return true;
  });
  EXPECT_EQ(waiter.wait_for(200ms), std::future_status::timeout);
  h.release();
  ASSERT_EQ(waiter.wait_for(60s), std::future_status::ready);
  EXPECT_TRUE(waiter.get());
}

// Timed waits and signals (no stray signal, mask and pending set left alone,
// the application's handlers never run): test_interprocess_hostile.cpp.

// ---- decorators ----

TEST(InterprocessLocked, RunsTheCallableWithTheLockHeldAndForwards) {
  temp_dir dir;
  const auto path = dir / "lock";
  auto add = fasteners::interprocess_locked(path, [&](int a, int b) {
    EXPECT_EQ(run_helper({"try", path.string(), "shared"}), helper_busy);
    return a + b;
  });
  EXPECT_EQ(add(2, 3), 5);
  EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_acquired);
}

TEST(InterprocessLocked, ReadAndWriteDecorators) {
  temp_dir dir;
  const auto path = dir / "lock";
  auto read = fasteners::interprocess_read_locked(path, [&] {
    EXPECT_EQ(run_helper({"try", path.string(), "shared"}), helper_acquired);
    EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_busy);
    return std::string("read");
  });
  auto write = fasteners::interprocess_write_locked(path, [&](std::string s) {
    EXPECT_EQ(run_helper({"try", path.string(), "shared"}), helper_busy);
    return s + "!";
  });
  EXPECT_EQ(read(), "read");
  EXPECT_EQ(write("write"), "write!");
}

TEST(InterprocessLocked, ReleasesOnException) {
  temp_dir dir;
  const auto path = dir / "lock";
  auto fail = fasteners::interprocess_locked(path, [] { throw std::runtime_error("boom"); });
  EXPECT_THROW(fail(), std::runtime_error);
  EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_acquired);
}

}  // namespace

namespace {

TEST(InterprocessLock, NativeHandleIsTheOpenLockFileOnceUsed) {
  temp_dir dir;
  interprocess_reader_writer_lock rw(dir / "lock");
  EXPECT_EQ(rw.native_handle(), -1);  // nothing opened before the first attempt
  rw.lock_shared();
  const std::intptr_t handle = rw.native_handle();
  EXPECT_NE(handle, -1);
  rw.unlock_shared();
  EXPECT_EQ(rw.native_handle(), handle);  // kept open for the next lock
}

}  // namespace
