// Failures the OS rarely produces on demand (EINTR, ENOLCK, EIO), injected
// through the back end's system-call table.
#include <fasteners/interprocess_lock.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

#ifndef _WIN32
#include <sys/wait.h>
#include <unistd.h>

#include "platform.hpp"
#include "posix/posix_lock_file.hpp"
#endif
#include "test_support.hpp"

namespace {

#ifdef _WIN32
TEST(InjectedFailures, PosixBackEndOnly) {
  GTEST_SKIP() << "these inject errno values into the fcntl back end; "
                  "WindowsInjectedFailures covers the LockFileEx back end";
}
#else

using fasteners::interprocess_lock;
using fasteners::interprocess_reader_writer_lock;
using fasteners::test::child_process;
using fasteners::test::temp_dir;
namespace posix = fasteners::detail::posix;
using namespace std::chrono_literals;

std::atomic<int> fail_next{0};   // how many lock calls fail
std::atomic<int> fail_errno{0};  // with this errno
std::atomic<int> lock_calls{0};

int failing_fcntl(int fd, int command, struct flock* request) {
  ++lock_calls;
  if (request->l_type != F_UNLCK && fail_next.load() > 0) {
    --fail_next;
    errno = fail_errno.load();
    return -1;
  }
  return ::fcntl(fd, command, request);
}

class InjectedFailures : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = posix::syscall_table();
    posix::syscall_table().fcntl_lock = &failing_fcntl;
    fail_next = 0;
    lock_calls = 0;
  }
  void TearDown() override { posix::syscall_table() = saved_; }
  posix::syscalls saved_{};
  temp_dir dir_;
};

TEST_F(InjectedFailures, EintrIsRetried) {
  interprocess_lock lock(dir_ / "lock");
  fail_errno = EINTR;
  fail_next = 3;
  EXPECT_TRUE(lock.try_lock());
  EXPECT_EQ(fail_next.load(), 0);
  lock.unlock();
  fail_next = 3;
  lock.lock();
  lock.unlock();
  fail_next = 3;
  EXPECT_TRUE(lock.try_lock_for(std::chrono::seconds(5)));
  lock.unlock();
}

TEST_F(InjectedFailures, NolckIsAnErrorNamingThePathNotBusy) {
  const auto path = dir_ / "lock";
  interprocess_reader_writer_lock lock(path);
  for (auto attempt : {0, 1, 2, 3}) {
    fail_errno = ENOLCK;
    fail_next = 1;
    try {
      switch (attempt) {
        case 0:
          (void)lock.try_lock();
          break;
        case 1:
          lock.lock();
          break;
        case 2:
          lock.lock_shared();
          break;
        case 3:
          (void)lock.try_lock_shared_for(std::chrono::seconds(1));
          break;
      }
      ADD_FAILURE() << "attempt " << attempt << " did not throw";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), ENOLCK) << attempt;
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
    EXPECT_FALSE(lock.is_writer());
    EXPECT_FALSE(lock.is_reader());
  }
  // Still usable afterwards.
  lock.lock();
  lock.unlock();
}

TEST_F(InjectedFailures, EioIsAnError) {
  interprocess_lock lock(dir_ / "lock");
  fail_errno = EIO;
  fail_next = 1;
  try {
    lock.lock();
    ADD_FAILURE() << "did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EIO);
  }
  EXPECT_FALSE(lock.owns_lock());
}

TEST_F(InjectedFailures, OnlyEagainAndEaccesMeanBusy) {
  interprocess_lock lock(dir_ / "lock");
  for (int busy : {EAGAIN, EACCES}) {
    fail_errno = busy;
    fail_next = 1;
    EXPECT_FALSE(lock.try_lock()) << busy;
  }
  fail_errno = EBADF;
  fail_next = 1;
  EXPECT_THROW((void)lock.try_lock(), std::system_error);
}

// Only the commands that wait (F_SETLKW, F_OFD_SETLKW) fail, so an injected
// EINTR is sure to land in a blocking or timed wait, not in the try before it.
std::atomic<int> fail_waits{0};
int eintr_in_waits(int fd, int command, struct flock* request) {
  if ((command == F_SETLKW || command == F_OFD_SETLKW) && fail_waits.load() > 0) {
    --fail_waits;
    errno = EINTR;
    return -1;
  }
  return ::fcntl(fd, command, request);
}

TEST_F(InjectedFailures, EintrInABlockingWaitIsRetried) {
  const auto path = dir_ / "lock";
  auto holder = child_process::helper({"hold", path.string(), "exclusive"});
  ASSERT_TRUE(holder.wait_for_line("locked"));
  posix::syscall_table().fcntl_lock = &eintr_in_waits;
  fail_waits = 3;
  interprocess_lock lock(path);
  std::thread release([&] {
    std::this_thread::sleep_for(300ms);
    holder.close_stdin();
  });
  lock.lock();
  release.join();
  EXPECT_EQ(fail_waits.load(), 0) << "the wait never saw the injected EINTRs";
  EXPECT_TRUE(lock.owns_lock());
  lock.unlock();
}

TEST_F(InjectedFailures, EintrInATimedWaitIsRetried) {
  const auto path = dir_ / "lock";
  auto holder = child_process::helper({"hold", path.string(), "shared"});
  ASSERT_TRUE(holder.wait_for_line("locked"));
  posix::syscall_table().fcntl_lock = &eintr_in_waits;
  fail_waits = 3;
  interprocess_reader_writer_lock lock(path);
  std::thread release([&] {
    std::this_thread::sleep_for(300ms);
    holder.close_stdin();
  });
  EXPECT_TRUE(lock.try_lock_for(30s));
  release.join();
  EXPECT_EQ(fail_waits.load(), 0) << "the timed wait never saw the injected EINTRs";
  lock.unlock();
}

// Exit codes of the forked child below.
constexpr int child_ok = 0;
constexpr int child_timed_out_wrongly = 10;
constexpr int child_did_not_poll = 11;
constexpr int child_missed_the_release = 12;
constexpr int child_threw = 13;

int no_threads(void* (*)(void*), void*) { return EAGAIN; }

// Where no helper thread can be started, timed waits poll (a fresh fork child
// has no idle helper threads to fall back on, so the failure is sure to bite).
TEST_F(InjectedFailures, TimedWaitsPollWhenNoThreadCanBeStarted) {
  const auto path = dir_ / "lock";
  interprocess_lock parent_lock(path);
  parent_lock.lock();
  int go[2], waited[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(waited), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(go[1]);
    ::close(waited[0]);
    fasteners::detail::platform_table().create_thread = &no_threads;
    int code = child_ok;
    try {
      interprocess_lock lock(path);
      lock_calls = 0;
      const auto t0 = std::chrono::steady_clock::now();
      if (lock.try_lock_for(300ms)) {
        code = child_timed_out_wrongly;
      } else if (std::chrono::steady_clock::now() - t0 < 290ms) {
        code = child_timed_out_wrongly;
      } else if (lock_calls.load() < 5) {
        code = child_did_not_poll;
      } else {
        char byte = 'w';
        if (::write(waited[1], &byte, 1) != 1) code = child_threw;  // "the timed wait gave up"
        if (::read(go[0], &byte, 1) != 1) code = child_threw;       // "released"
        if (code == child_ok && !lock.try_lock_for(20s)) code = child_missed_the_release;
        if (code == child_ok) lock.unlock();
      }
    } catch (...) {
      code = child_threw;
    }
    ::_exit(code);
  }
  ::close(go[0]);
  ::close(waited[1]);
  char byte = 0;
  (void)::read(waited[0], &byte, 1);  // EOF too if the child ended early; its code says why
  ::close(waited[0]);
  parent_lock.unlock();
  ASSERT_EQ(::write(go[1], "x", 1), 1);
  ::close(go[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), child_ok);
}

#endif

}  // namespace
