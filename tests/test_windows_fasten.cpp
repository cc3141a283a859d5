// fasten on Windows, black-box: the command started with CreateProcessW, its
// arguments quoted, its exit status passed on, -c through cmd.exe.
#if defined(_WIN32) && defined(FASTENERS_FASTEN_BINARY)

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using fasteners::test::child_process;
using fasteners::test::helper_acquired;
using fasteners::test::helper_binary;
using fasteners::test::helper_busy;
using fasteners::test::temp_dir;

struct result {
  int status = -1;
  std::string output;
};

result fasten(const std::vector<std::string>& args) {
  child_process child(FASTENERS_FASTEN_BINARY, args);
  child.close_stdin();
  result r;
  r.output = child.read_all();
  r.status = child.wait().value_or(-1);
  return r;
}

TEST(WindowsFasten, PassesTheCommandsExitStatusOn) {
  temp_dir dir;
  const auto lock = (dir / "lock").string();
  EXPECT_EQ(fasten({lock, "-c", "exit 42"}).status, 42);
  EXPECT_EQ(fasten({lock, "cmd.exe", "/d", "/c", "exit 7"}).status, 7);
  EXPECT_EQ(fasten({lock, "-c", "exit 0"}).status, 0);
}

TEST(WindowsFasten, CommandRunsWithTheLockHeld) {
  temp_dir dir;
  const auto lock = (dir / "lock").string();
  EXPECT_EQ(fasten({lock, helper_binary(), "try", lock, "shared"}).status, helper_busy);
  EXPECT_EQ(fasten({"-s", lock, helper_binary(), "try", lock, "shared"}).status, helper_acquired);
  EXPECT_EQ(fasten({"-s", lock, helper_binary(), "try", lock, "exclusive"}).status, helper_busy);
}

TEST(WindowsFasten, ArgumentsWithSpacesAndBackslashesArriveWhole) {
  temp_dir dir;
  const auto lock = (dir / "lock").string();
  const auto spaced = (dir / "a dir with  spaces" / "lock file").string();
  ASSERT_EQ(fasten({lock, helper_binary(), "try", spaced, "exclusive"}).status, helper_acquired);
  EXPECT_TRUE(std::filesystem::is_regular_file(spaced));
}

TEST(WindowsFasten, ShellCommandTextReachesCmdUntouched) {
  temp_dir dir;
  const auto r = fasten({(dir / "lock").string(), "-c", "echo \"a  b\" & echo c"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("\"a  b\""), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find('\\'), std::string::npos) << "quotes were escaped for the C runtime: " << r.output;
  EXPECT_NE(r.output.find("c"), std::string::npos) << r.output;
}

TEST(WindowsFasten, ConflictGivesUpWithOneOrTheChosenStatus) {
  temp_dir dir;
  const auto lock = (dir / "lock").string();
  auto holder = child_process::helper({"hold", lock, "exclusive"});
  ASSERT_TRUE(holder.wait_for_line("locked"));
  EXPECT_EQ(fasten({"-n", lock, "-c", "exit 0"}).status, 1);
  EXPECT_EQ(fasten({"-w", "0.2", "-E", "9", lock, "-c", "exit 0"}).status, 9);
  EXPECT_EQ(fasten({"--status", lock}).status, 2);
  holder.close_stdin();
  EXPECT_EQ(holder.wait(), 0);
  EXPECT_EQ(fasten({"--status", lock}).status, 0);
  EXPECT_EQ(fasten({"-n", lock, "-c", "exit 0"}).status, 0);
}

TEST(WindowsFasten, MissingCommandIs127AndADirectoryIsNoLockFile) {
  temp_dir dir;
  EXPECT_EQ(fasten({(dir / "lock").string(), "fasteners-no-such-command"}).status, 127);
  EXPECT_EQ(fasten({dir.path().string(), "-c", "exit 0"}).status, 66);
}

}  // namespace

#endif
