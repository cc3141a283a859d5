// Failures the OS rarely produces on demand (EINTR, ENOLCK, EIO), injected
// through the back end's system-call table.
#include <fasteners/interprocess_lock.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>

#ifndef _WIN32
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
using fasteners::test::temp_dir;
namespace posix = fasteners::detail::posix;

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

#endif

}  // namespace
