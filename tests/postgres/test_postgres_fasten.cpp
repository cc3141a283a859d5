// fasten --postgres: the file form's options and exit codes on a server lock,
// --status from pg_locks, and exit 75 when the lock is lost under the command.
#include "postgres_test_support.hpp"
#include "test_support.hpp"

#include <fasteners/postgres_lock.hpp>

#include <chrono>
#include <thread>

namespace fasteners::test {
namespace {

using namespace std::chrono_literals;

#if defined(FASTENERS_FASTEN_BINARY)
std::string fasten() { return FASTENERS_FASTEN_BINARY; }

int run_fasten(const std::vector<std::string>& args, std::string* out = nullptr) {
  child_process p(fasten(), args);
  const std::string text = p.read_all();
  if (out != nullptr) *out = text;
  return p.wait().value_or(-1);
}

TEST(PostgresFasten, RunsTheCommandAndKeepsTheFileFormsExitCodes) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("fasten");
  std::string out;
  EXPECT_EQ(run_fasten({"--postgres", cluster->conninfo, name, "-c", "echo ran; exit 7"}, &out), 7);
  EXPECT_EQ(out, "ran\n");
  postgres_lock holder(name, postgres_options{cluster->tcp_conninfo});
  holder.lock();
  EXPECT_EQ(run_fasten({"-n", "--postgres", cluster->conninfo, name, "true"}), 1);
  EXPECT_EQ(run_fasten({"-w", "0.3", "-E", "9", "--postgres", cluster->conninfo, name, "true"}), 9);
  EXPECT_EQ(run_fasten({"--status", "--postgres", cluster->conninfo, name}, &out), 2);
  EXPECT_NE(out.find("held exclusive by backend pid"), std::string::npos) << out;
  // Shared holders run together; a writer is refused meanwhile.
  holder.unlock();
  EXPECT_EQ(run_fasten({"--status", "--postgres", cluster->conninfo, name}, &out), 0);
  EXPECT_EQ(
      run_fasten({"-s", "--postgres", cluster->conninfo, name, "-c",
                  std::string("'") + fasten() + "' -sn --postgres '" + cluster->conninfo + "' " + name +
                      " true && ! '" + fasten() + "' -n --postgres '" + cluster->conninfo + "' " + name + " true"}),
      0);
  EXPECT_EQ(run_fasten({"--tooz", name, "true"}), 64);  // --tooz without --postgres
}

#if defined(__SANITIZE_THREAD__)
#define FASTENERS_PG_FASTEN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FASTENERS_PG_FASTEN_TSAN 1
#endif
#endif

TEST(PostgresFasten, ALostLockTerminatesTheCommandAndExits75) {
#if defined(FASTENERS_PG_FASTEN_TSAN)
  // Measured under TSan: the loss is noticed and SIGTERM sent after 2 s, but
  // the command runs its full time and only then does fasten exit 75.
  GTEST_SKIP() << "fasten's on_lost callback sends fasten SIGTERM; the kernel delivers it to the main thread, asleep "
                  "in waitid(), where ThreadSanitizer only queues it (waitid is not one of its blocking calls; "
                  "SA_RESTART resumes the wait) and runs the relaying handler when the command has ended by itself: "
                  "the same limit as Fasten's signal-relay test; the other suites run this test";
#endif
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("fasten-lost");
  child_process f(fasten(), {"--postgres", cluster->tcp_conninfo, name, "-c", "echo started; exec sleep 60"});
  ASSERT_TRUE(f.wait_for_line("started"));
  const int pid = holder_pid(cluster->conninfo, name);
  ASSERT_NE(pid, 0);
  query_value(cluster->conninfo, "SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
  EXPECT_EQ(f.wait(30s), 75);
}
#endif

}  // namespace
}  // namespace fasteners::test
