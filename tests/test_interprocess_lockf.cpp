// Our locks and lockf(3) on the same file exclude each other, both ways.
#include <fasteners/interprocess_lock.hpp>

#include <gtest/gtest.h>

#include "test_support.hpp"

#ifndef _WIN32
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

using fasteners::interprocess_lock;
using fasteners::test::temp_dir;

#ifndef _WIN32
// Exit codes of the fork children.
constexpr int kLockfLocked = 0;
constexpr int kLockfCannotOpen = 2;
constexpr int kLockfBusy = 3;
constexpr int kLockfCannotWrite = 4;
constexpr int kLockfCannotRead = 5;
constexpr int kChildDidNotExit = 100;

// Runs `body` in a forked child and returns its exit code.
template <class F>
int in_child(F body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : kChildDidNotExit;
}

int lockf_try(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0666);
  if (fd < 0) return kLockfCannotOpen;
  const int result = ::lockf(fd, F_TLOCK, 0) == 0 ? kLockfLocked : kLockfBusy;
  ::close(fd);
  return result;
}
#endif

TEST(Lockf, OurLockExcludesLockf) {
#ifdef _WIN32
  GTEST_SKIP() << "lockf(3) is POSIX";
#else
  temp_dir dir;
  const auto path = dir / "lock";
  interprocess_lock lock(path);
  lock.lock();
  EXPECT_EQ(in_child([&] { return lockf_try(path); }), kLockfBusy);
  lock.unlock();
  EXPECT_EQ(in_child([&] { return lockf_try(path); }), kLockfLocked);
#endif
}

TEST(Lockf, LockfExcludesOurLock) {
#ifdef _WIN32
  GTEST_SKIP() << "lockf(3) is POSIX";
#else
  temp_dir dir;
  const auto path = dir / "lock";
  int ready[2], done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0666);
    if (fd < 0 || ::lockf(fd, F_LOCK, 0) != 0) ::_exit(kLockfCannotOpen);
    char c = 'L';
    if (::write(ready[1], &c, 1) != 1) ::_exit(kLockfCannotWrite);
    if (::read(done[0], &c, 1) != 1) ::_exit(kLockfCannotRead);
    ::_exit(kLockfLocked);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  interprocess_lock lock(path);
  EXPECT_FALSE(lock.try_lock());
  ASSERT_EQ(::write(done[1], &c, 1), 1);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == kLockfLocked);
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
  for (int fd : {ready[0], ready[1], done[0], done[1]}) ::close(fd);
#endif
}

}  // namespace
