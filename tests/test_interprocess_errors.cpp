// Inter-process locks: bad input, misuse, fork, descriptor hygiene.
#include <fasteners/interprocess_lock.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <system_error>
#include <thread>

#include "test_support.hpp"

#ifndef _WIN32
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

using namespace std::chrono_literals;
using fasteners::interprocess_lock;
using fasteners::interprocess_reader_writer_lock;
using fasteners::test::error_of;
using fasteners::test::helper_acquired;
using fasteners::test::helper_busy;
using fasteners::test::read_file;
using fasteners::test::run_helper;
using fasteners::test::temp_dir;
using fasteners::test::write_file;

TEST(InterprocessLockErrors, DirectoryIsRejectedNamingThePath) {
  temp_dir dir;
  const auto path = dir / "a-directory";
  std::filesystem::create_directory(path);
  interprocess_lock lock(path);
  auto e = error_of([&] { lock.lock(); });
  EXPECT_EQ(e.code, std::errc::is_a_directory);
  EXPECT_NE(e.what.find(path.string()), std::string::npos) << e.what;
  EXPECT_FALSE(lock.owns_lock());
}

TEST(InterprocessLockErrors, FifoIsRejectedWithoutHanging) {
#ifdef _WIN32
  GTEST_SKIP() << "no FIFOs on Windows; WindowsFileLock.NonDiskFileIsRejectedNamingThePath covers named pipes";
#else
  temp_dir dir;
  const auto path = dir / "fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  interprocess_lock lock(path);
  auto e = error_of([&] { (void)lock.try_lock_for(1s); });
  EXPECT_EQ(e.code, std::errc::invalid_argument);
  EXPECT_NE(e.what.find(path.string()), std::string::npos) << e.what;
#endif
}

TEST(InterprocessLockErrors, SymlinkIsRejectedAndItsTargetUntouched) {
#ifdef _WIN32
  GTEST_SKIP() << "libstdc++ has no std::filesystem::create_symlink on Windows; "
                  "WindowsFileLock.SymbolicLinkIsRejectedAndItsTargetUntouched covers it";
#else
  temp_dir dir;
  const auto target = dir / "target";
  write_file(target, "keep me");
  const auto link = dir / "link";
  std::filesystem::create_symlink(target, link);
  interprocess_reader_writer_lock lock(link);
  auto e = error_of([&] { lock.lock_shared(); });
  EXPECT_EQ(e.code, std::errc::too_many_symbolic_link_levels);
  EXPECT_NE(e.what.find(link.string()), std::string::npos) << e.what;
  EXPECT_EQ(read_file(target), "keep me");
#endif
}

TEST(InterprocessLockErrors, MissingParentsAreCreated) {
  temp_dir dir;
  const auto path = dir / "a" / "b" / "c" / "lock";
  interprocess_lock lock(path);
  EXPECT_FALSE(std::filesystem::exists(path));  // nothing happens before the first lock
  lock.lock();
  EXPECT_TRUE(std::filesystem::is_regular_file(path));
  lock.unlock();
  EXPECT_TRUE(std::filesystem::exists(path));  // left in place after release
}

TEST(InterprocessLockErrors, MissingParentsAreAnErrorWhenCreationIsDisabled) {
  temp_dir dir;
  const auto path = dir / "missing" / "lock";
  fasteners::interprocess_options options;
  options.create_parent_directories = false;
  interprocess_lock lock(path, options);
  auto e = error_of([&] { lock.lock(); });
  EXPECT_EQ(e.code, std::errc::no_such_file_or_directory);
  EXPECT_FALSE(std::filesystem::exists(path.parent_path()));
}

TEST(InterprocessLockErrors, ParentThatIsAFileIsAnErrorNamingThePath) {
  temp_dir dir;
  write_file(dir / "file", "x");
  const auto path = dir / "file" / "lock";
  interprocess_lock lock(path);
  auto e = error_of([&] { lock.lock(); });
  EXPECT_NE(e.code, std::errc{});
  EXPECT_NE(e.what.find(path.string()), std::string::npos) << e.what;
  EXPECT_EQ(read_file(dir / "file"), "x");
}

TEST(InterprocessLockErrors, ExistingContentSurvivesLockingAndUnlocking) {
  temp_dir dir;
  const auto path = dir / "lock";
  const std::string content = "pid 1234\nsome data the owner keeps here\n";
  write_file(path, content);
  {
    interprocess_reader_writer_lock lock(path);
    lock.lock();
    lock.unlock();
    lock.lock_shared();
    lock.unlock_shared();
  }
  EXPECT_EQ(read_file(path), content);
}

TEST(InterprocessLockErrors, NewFileGetsPermissionsLessTheUmask) {
#ifdef _WIN32
  GTEST_SKIP() << "Windows has no umask or mode bits: a new lock file inherits its directory's ACL";
#else
  temp_dir dir;
  const auto path = dir / "lock";
  const mode_t old = ::umask(027);
  {
    interprocess_lock lock(path);
    lock.lock();
    lock.unlock();
  }
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
#endif
}

// Root ignores permissions, so the check runs in a child that drops to nobody.
TEST(InterprocessLockErrors, DirectoryWithoutPermissionIsAnErrorNamingThePath) {
#ifdef _WIN32
  GTEST_SKIP() << "needs fork() and POSIX permissions (Windows has ACLs, which Wine does not enforce)";
#else
  temp_dir dir;
  const auto locked_dir = dir / "no-access";
  std::filesystem::create_directory(locked_dir);
  ::chmod(dir.path().c_str(), 0755);
  ::chmod(locked_dir.c_str(), 0555);
  const auto path = locked_dir / "lock";
  constexpr int kNobodyGotPermissionDenied = 0;
  constexpr int kNobodyCouldNotDropPrivileges = 10;
  constexpr int kNobodyGotAnotherError = 11;
  constexpr int kNobodyMessageLacksThePath = 12;
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(kNobodyCouldNotDropPrivileges);
    interprocess_lock lock(path);
    auto e = error_of([&] { lock.lock(); });
    if (e.code != std::errc::permission_denied) ::_exit(kNobodyGotAnotherError);
    if (e.what.find(path.string()) == std::string::npos) ::_exit(kNobodyMessageLacksThePath);
    ::_exit(kNobodyGotPermissionDenied);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kNobodyGotPermissionDenied);
  EXPECT_FALSE(std::filesystem::exists(path));
#endif
}

TEST(InterprocessLockErrors, UnlockWithoutLockIsNotPermitted) {
  temp_dir dir;
  interprocess_lock lock(dir / "lock");
  EXPECT_EQ(error_of([&] { lock.unlock(); }).code, std::errc::operation_not_permitted);
  interprocess_reader_writer_lock rw(dir / "rw");
  EXPECT_EQ(error_of([&] { rw.unlock(); }).code, std::errc::operation_not_permitted);
  EXPECT_EQ(error_of([&] { rw.unlock_shared(); }).code, std::errc::operation_not_permitted);
  rw.lock_shared();
  EXPECT_EQ(error_of([&] { rw.unlock(); }).code, std::errc::operation_not_permitted);  // wrong side
  rw.unlock_shared();
}

TEST(InterprocessLockErrors, DoubleUnlockIsNotPermittedAndLeavesOthersAlone) {
  temp_dir dir;
  const auto path = dir / "lock";
  interprocess_lock lock(path);
  lock.lock();
  lock.unlock();
  EXPECT_EQ(error_of([&] { lock.unlock(); }).code, std::errc::operation_not_permitted);
  EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_acquired);
}

TEST(InterprocessLockErrors, UnlockFromAThreadThatDoesNotHoldItIsNotPermitted) {
  temp_dir dir;
  const auto path = dir / "lock";
  interprocess_lock lock(path);
  lock.lock();
  std::errc code{};
  std::thread([&] { code = error_of([&] { lock.unlock(); }).code; }).join();
  EXPECT_EQ(code, std::errc::operation_not_permitted);
  EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_busy);
  lock.unlock();
}

TEST(InterprocessLockErrors, NoDescriptorLeaksOverThousandsOfCycles) {
  temp_dir dir;
  const auto path = dir / "lock";
  const int before = fasteners::test::open_descriptor_count();
  for (int i = 0; i < 3000; ++i) {
    interprocess_reader_writer_lock lock(path);
    if (i % 2 == 0) {
      lock.lock();
      lock.unlock();
    } else {
      lock.lock_shared();
      lock.unlock_shared();
    }
  }
  for (int i = 0; i < 1000; ++i) {  // failures must not leak either
    interprocess_lock bad(dir.path());
    EXPECT_THROW(bad.lock(), std::system_error);
  }
  EXPECT_EQ(fasteners::test::open_descriptor_count(), before);
}

TEST(InterprocessLockErrors, LockIsNotHeldAfterDestructionOfHolder) {
  temp_dir dir;
  const auto path = dir / "lock";
  {
    interprocess_lock lock(path);
    lock.lock();
  }
  EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_acquired);
}

// ---- fork ----

#ifdef _WIN32
TEST(InterprocessLockFork, DoesNotApplyOnWindows) {
  GTEST_SKIP() << "no fork() on Windows: ChildCannotReleaseTheParentsLock, "
                  "ChildCanUseAnInheritedObjectOnceTheParentReleases and "
                  "ChildTakingTheLockDoesNotShareItWithTheParent do not apply";
}
#else

// Exit codes of the fork children below.
constexpr int kChildLeftTheParentsLockAlone = 0;
constexpr int kChildUnlockedTheParentsLock = 10;
constexpr int kChildSaysItOwnsTheParentsLock = 11;
constexpr int kChildGotTheParentsLock = 12;
constexpr int kChildLocked = 0;
constexpr int kChildCouldNotLock = 10;
constexpr int kChildLockedAndUnlocked = 0;
constexpr int kChildCouldNotWrite = 10;
constexpr int kChildCouldNotRead = 11;

TEST(InterprocessLockFork, ChildCannotReleaseTheParentsLock) {
  temp_dir dir;
  const auto path = dir / "lock";
  auto lock = std::make_unique<interprocess_lock>(path);
  lock->lock();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (error_of([&] { lock->unlock(); }).code != std::errc::operation_not_permitted)
      ::_exit(kChildUnlockedTheParentsLock);
    if (lock->owns_lock()) ::_exit(kChildSaysItOwnsTheParentsLock);
    if (lock->try_lock())
      ::_exit(kChildGotTheParentsLock);  // the parent still holds it, and it conflicts with the child
    lock.reset();                        // the destructor must leave the parent's lock alone
    ::_exit(kChildLeftTheParentsLockAlone);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kChildLeftTheParentsLockAlone);
  EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_busy);
  EXPECT_TRUE(lock->owns_lock());
  lock->unlock();
  EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_acquired);
}

TEST(InterprocessLockFork, ChildCanUseAnInheritedObjectOnceTheParentReleases) {
  temp_dir dir;
  const auto path = dir / "lock";
  interprocess_reader_writer_lock lock(path);
  lock.lock_shared();  // opens the file in the parent
  lock.unlock_shared();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (!lock.try_lock()) ::_exit(kChildCouldNotLock);
    ::_exit(kChildLocked);  // dies holding it: the kernel releases
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == kChildLocked);
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
}

TEST(InterprocessLockFork, ChildTakingTheLockDoesNotShareItWithTheParent) {
  temp_dir dir;
  const auto path = dir / "lock";
  interprocess_lock lock(path);
  lock.lock();
  lock.unlock();
  int to_parent[2];
  int to_child[2];
  ASSERT_EQ(::pipe(to_parent), 0);
  ASSERT_EQ(::pipe(to_child), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    lock.lock();
    char c = 'L';
    if (::write(to_parent[1], &c, 1) != 1) ::_exit(kChildCouldNotWrite);
    if (::read(to_child[0], &c, 1) != 1) ::_exit(kChildCouldNotRead);
    lock.unlock();
    ::_exit(kChildLockedAndUnlocked);
  }
  char c = 0;
  ASSERT_EQ(::read(to_parent[0], &c, 1), 1);
  EXPECT_FALSE(lock.try_lock());  // the child's lock is not ours
  c = 'U';
  ASSERT_EQ(::write(to_child[1], &c, 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == kChildLockedAndUnlocked);
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
  for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) ::close(fd);
}
#endif

}  // namespace
