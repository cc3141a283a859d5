// Lock-file paths at the edges: what is refused before anything is created,
// and parent directories that exist only for an attempt that succeeds
// (src/lock_file_path.hpp, and each back end's opening code).
#include <fasteners/interprocess_lock.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "lock_file_path.hpp"
#include "test_support.hpp"

#ifndef _WIN32
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "posix/posix_lock_file.hpp"
#endif

namespace {

namespace fs = std::filesystem;
using fasteners::interprocess_lock;
using fasteners::interprocess_reader_writer_lock;
using fasteners::test::error_of;
using fasteners::test::temp_dir;

// Everything under `dir`, for "nothing was created".
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    names.push_back(fs::relative(entry.path(), dir).generic_string());
  }
  return names;
}

TEST(LockFilePath, PrintablePathEscapesNulAndControlCharacters) {
  EXPECT_EQ(fasteners::detail::printable_path(fs::path(std::string("a\0b", 3))), "a\\0b");
  EXPECT_EQ(fasteners::detail::printable_path(fs::path("line\nbreak\x7f")), "line\\x0abreak\\x7f");
  EXPECT_EQ(fasteners::detail::printable_path(fs::path("plain.lock")), "plain.lock");
}

TEST(LockFilePath, NulInTheFileNameIsRefusedAndNothingIsCreated) {
  temp_dir dir;
  const fs::path path = dir / std::string("nulfile\0.lock", 13);
  const std::string shown = (dir / "nulfile").string() + "\\0.lock";
  {
    interprocess_lock lock(path);
    const auto e = error_of([&] { lock.lock(); });
    EXPECT_EQ(e.code, std::errc::invalid_argument) << e.what;
    EXPECT_NE(e.what.find(shown), std::string::npos) << e.what;
    EXPECT_FALSE(lock.owns_lock());
  }
  {
    interprocess_reader_writer_lock lock(path);
    const auto e = error_of([&] { (void)lock.try_lock_shared(); });
    EXPECT_EQ(e.code, std::errc::invalid_argument) << e.what;
    EXPECT_NE(e.what.find(shown), std::string::npos) << e.what;
  }
  EXPECT_EQ(listing(dir.path()), std::vector<std::string>{});
}

TEST(LockFilePath, NulInADirectoryPartIsRefusedAndNothingIsCreated) {
  temp_dir dir;
  const fs::path path = dir / std::string("sub\0dir", 7) / "x.lock";
  interprocess_lock lock(path);
  const auto e = error_of([&] { (void)lock.try_lock(); });
  EXPECT_EQ(e.code, std::errc::invalid_argument) << e.what;
  EXPECT_NE(e.what.find((dir / "sub").string() + "\\0dir"), std::string::npos) << e.what;
  EXPECT_EQ(listing(dir.path()), std::vector<std::string>{});
}

// A name that can only be a directory is refused before its parents are made.
TEST(LockFilePath, TrailingSlashIsRefusedBeforeAnythingIsCreated) {
  temp_dir dir;
  for (const std::string name : {"newdir/", "d1/d2/", "d1/d2/.", "d1/d2/.."}) {
    const fs::path path = dir.path() / fs::path(name);
    interprocess_lock lock(path);
    const auto e = error_of([&] { lock.lock(); });
    EXPECT_EQ(e.code, std::errc::is_a_directory) << name << ": " << e.what;
    EXPECT_NE(e.what.find(path.string()), std::string::npos) << e.what;
    EXPECT_EQ(listing(dir.path()), std::vector<std::string>{}) << name;
  }
  // The same for a directory that is there already.
  fs::create_directory(dir / "there");
  interprocess_reader_writer_lock lock(dir.path() / fs::path("there/"));
  EXPECT_EQ(error_of([&] { (void)lock.try_lock(); }).code, std::errc::is_a_directory);
  EXPECT_EQ(listing(dir.path()), std::vector<std::string>{"there"});
}

TEST(LockFilePath, OverLongNameUnderMissingDirectoriesLeavesNothing) {
  temp_dir dir;
  fs::create_directory(dir / "existing");
  const fs::path path = dir / "existing" / "d1" / "d2" / std::string(300, 'n');
  interprocess_lock lock(path);
  const auto e = error_of([&] { lock.lock(); });
#ifndef _WIN32
  EXPECT_EQ(e.code, std::errc::filename_too_long) << e.what;
#endif
  EXPECT_NE(e.code, std::errc{}) << "a 300-character name was accepted";
  // d1 and d2 were made for the attempt, and went with it; "existing" was there before.
  EXPECT_EQ(listing(dir.path()), std::vector<std::string>{"existing"});
}

TEST(LockFilePath, ParentThatIsAFileLeavesNothing) {
  temp_dir dir;
  fasteners::test::write_file(dir / "file", "content");
  interprocess_lock lock(dir / "file" / "d1" / "x.lock");
  const auto e = error_of([&] { lock.lock(); });
#ifndef _WIN32
  EXPECT_EQ(e.code, std::errc::not_a_directory) << e.what;
#endif
  EXPECT_NE(e.code, std::errc{});
  EXPECT_EQ(listing(dir.path()), std::vector<std::string>{"file"});
  EXPECT_EQ(fasteners::test::read_file(dir / "file"), "content");
}

TEST(LockFilePath, ParentsMadeForASuccessfulAttemptStay) {
  temp_dir dir;
  interprocess_lock lock(dir / "d1" / "d2" / "x.lock");
  lock.lock();
  lock.unlock();
  EXPECT_TRUE(fs::is_regular_file(dir / "d1" / "d2" / "x.lock"));
}

#ifdef _WIN32
TEST(LockFilePathPosix, NeedsPosix) {
  GTEST_SKIP() << "these inject failures through the POSIX system-call table and use ptys and setsid()";
}
#else
namespace posix = fasteners::detail::posix;

// Injected: open(2) fails once the attempt has made directories, as it would
// with EACCES on a directory that turns out not to be ours to write.
std::atomic<int> mkdirs{0};
std::atomic<bool> fill_d1{false};  // someone else puts a file in d1 meanwhile
fs::path filled_dir;

int counting_mkdir(const char* path, unsigned mode) {
  const int result = ::mkdir(path, static_cast<mode_t>(mode));
  if (result == 0) ++mkdirs;
  return result;
}

int open_failing_after_mkdir(const char* path, int flags, unsigned mode) {
  if (mkdirs.load() == 0) return ::open(path, flags, static_cast<mode_t>(mode));
  if (fill_d1.load()) fasteners::test::write_file(filled_dir / "someone-elses", "x");
  errno = EACCES;
  return -1;
}

class LockFilePathInjected : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = posix::syscall_table();
    posix::syscall_table().mkdir = &counting_mkdir;
    posix::syscall_table().open = &open_failing_after_mkdir;
    mkdirs = 0;
    fill_d1 = false;
  }
  void TearDown() override { posix::syscall_table() = saved_; }
  posix::syscalls saved_{};
  temp_dir dir_;
};

TEST_F(LockFilePathInjected, OpenFailingAfterParentsWereMadeRemovesThem) {
  fs::create_directory(dir_ / "existing");
  const auto path = dir_ / "existing" / "d1" / "d2" / "d3" / "x.lock";
  interprocess_lock lock(path);
  const auto e = error_of([&] { lock.lock(); });
  EXPECT_EQ(e.code, std::errc::permission_denied) << e.what;
  EXPECT_NE(e.what.find(path.string()), std::string::npos) << e.what;
  EXPECT_EQ(mkdirs.load(), 3);
  EXPECT_EQ(listing(dir_.path()), std::vector<std::string>{"existing"});
}

TEST_F(LockFilePathInjected, RollbackSparesADirectorySomeoneElseFilled) {
  filled_dir = dir_ / "d1";
  fill_d1 = true;
  interprocess_lock lock(dir_ / "d1" / "d2" / "x.lock");
  EXPECT_EQ(error_of([&] { lock.lock(); }).code, std::errc::permission_denied);
  // d2 was ours and empty: gone. d1 was ours but holds someone else's file now.
  EXPECT_EQ(listing(dir_.path()), (std::vector<std::string>{"d1", "d1/someone-elses"}));
}

TEST_F(LockFilePathInjected, EveryCallOfTheOpeningGoesThroughTheTable) {
  static std::atomic<int> fstats{0};
  fstats = 0;
  posix::syscall_table().open = saved_.open;
  posix::syscall_table().fstat = [](int fd, struct stat* status) {
    ++fstats;
    return ::fstat(fd, status);
  };
  interprocess_lock lock(dir_ / "d1" / "x.lock");
  lock.lock();
  lock.unlock();
  EXPECT_EQ(mkdirs.load(), 1);
  EXPECT_GE(fstats.load(), 1);
}

// Exit codes of the pty child.
constexpr int kPtyChildRefusedWithoutTerminal = 0;
constexpr int kPtyChildSetsidFailed = 10;
constexpr int kPtyChildNoPty = 11;
constexpr int kPtyChildPtyWasAccepted = 12;
constexpr int kPtyChildWrongError = 13;
constexpr int kPtyChildGotControllingTerminal = 14;
constexpr int kPtyChildUnexpectedTtyError = 15;

// A session leader without a controlling terminal that names a pty as its
// lock file must have it refused, and must not have it as its controlling
// terminal afterwards (O_NOCTTY).
TEST(LockFilePathPty, SessionLeaderNamingAPtyGetsItRefusedNotAsItsTerminal) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setsid() < 0) ::_exit(kPtyChildSetsidFailed);
    const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) ::_exit(kPtyChildNoPty);
    const char* slave = ::ptsname(master);
    if (slave == nullptr) ::_exit(kPtyChildNoPty);
    interprocess_lock lock{fs::path(slave)};
    const auto e = error_of([&] { (void)lock.try_lock(); });
    if (e.code == std::errc{}) ::_exit(kPtyChildPtyWasAccepted);
    if (e.code != std::errc::invalid_argument) ::_exit(kPtyChildWrongError);
    const int tty = ::open("/dev/tty", O_RDWR | O_NOCTTY);
    if (tty >= 0) ::_exit(kPtyChildGotControllingTerminal);
    ::_exit(errno == ENXIO ? kPtyChildRefusedWithoutTerminal : kPtyChildUnexpectedTtyError);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the child died of a signal: " << status;
  const int code = WEXITSTATUS(status);
  if (code == kPtyChildNoPty) GTEST_SKIP() << "no pseudo-terminals here (posix_openpt failed)";
  EXPECT_NE(code, kPtyChildSetsidFailed);
  EXPECT_NE(code, kPtyChildPtyWasAccepted) << "a pty was accepted as a lock file";
  EXPECT_NE(code, kPtyChildWrongError) << "refused, but not as invalid_argument (not a regular file)";
  EXPECT_NE(code, kPtyChildGotControllingTerminal) << "opening the lock file made the pty the controlling terminal";
  EXPECT_NE(code, kPtyChildUnexpectedTtyError) << "open(\"/dev/tty\") failed, but not with ENXIO";
  EXPECT_EQ(code, kPtyChildRefusedWithoutTerminal);
}
#endif

}  // namespace
