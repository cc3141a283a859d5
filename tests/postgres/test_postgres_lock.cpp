// postgres_lock and postgres_reader_writer_lock against a real server.
#include "postgres_test_support.hpp"
#include "test_support.hpp"

#include <fasteners/postgres_lock.hpp>

#include <pthread.h>
#include <signal.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <thread>
#include <vector>

namespace fasteners::test {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

template <class F>
bool eventually(F condition, std::chrono::milliseconds timeout = 20s) {
  const auto until = clock_type::now() + timeout;
  while (clock_type::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

postgres_options options_for(const std::string& conninfo) {
  postgres_options o;
  o.conninfo = conninfo;
  return o;
}

TEST(PostgresKeys, Md5VectorsAndTheDocumentedKeys) {
  // ('x' || left(md5('fasteners-demo'), 16))::bit(64)::bigint, and tooz's md5(name)[0], [1].
  EXPECT_EQ(postgres_hash64_key("fasteners-demo"), 7527621034204626603LL);
  EXPECT_EQ(postgres_tooz_keys("fasteners-demo"), std::make_pair(104, 119));
  // d41d8cd98f00b204..., 900150983cd24fb0... (RFC 1321), and a name longer than one block.
  EXPECT_EQ(postgres_hash64_key(""), static_cast<std::int64_t>(0xd41d8cd98f00b204ULL));
  EXPECT_EQ(postgres_hash64_key("abc"), static_cast<std::int64_t>(0x900150983cd24fb0ULL));
  EXPECT_EQ(postgres_hash64_key("12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
            static_cast<std::int64_t>(0x57edf4a22be3c955ULL));
}

TEST(PostgresKeys, TheServerComputesTheSameKey) {
  FASTENERS_REQUIRE_SERVER();
  for (const char* name : {"fasteners-demo", "", "nightly-report", "ünïcødé"}) {
    EXPECT_EQ(
        query_value(cluster->conninfo, std::string("SELECT ('x' || left(md5('") + name + "'), 16))::bit(64)::bigint"),
        std::to_string(postgres_hash64_key(name)))
        << name;
  }
}

TEST(PostgresLock, LockShowsInPgLocksAndUnlockReleases) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("basic");
  postgres_lock lock(name, options_for(cluster->conninfo));
  EXPECT_EQ(lock.name(), name);
  EXPECT_FALSE(lock.owns_lock());
  lock.lock();
  EXPECT_TRUE(lock.owns_lock());
  EXPECT_EQ(advisory_count(cluster->conninfo, name, true), 1);
  EXPECT_NO_THROW(lock.ensure_held());
  // pg_stat_activity names the program and the lock.
  EXPECT_NE(query_value(cluster->conninfo, "SELECT application_name FROM pg_stat_activity WHERE pid = " +
                                               std::to_string(holder_pid(cluster->conninfo, name)))
                .find("lock " + name),
            std::string::npos);
  lock.unlock();
  EXPECT_FALSE(lock.owns_lock());
  EXPECT_EQ(advisory_count(cluster->conninfo, name, true), 0);
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
}

TEST(PostgresLock, ExcludesAnotherProcess) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("procs");
  child_process holder(helper(), {"hold", cluster->conninfo, name});
  ASSERT_TRUE(holder.wait_for_line("locked"));
  postgres_lock lock(name, options_for(cluster->tcp_conninfo));
  EXPECT_FALSE(lock.try_lock());
  EXPECT_EQ(child_process(helper(), {"try", cluster->conninfo, name}).wait(), pg_helper_busy);
  holder.close_stdin();
  EXPECT_EQ(holder.wait(), pg_helper_got);
  EXPECT_TRUE(lock.try_lock_for(20s));
  EXPECT_EQ(child_process(helper(), {"try", cluster->conninfo, name}).wait(), pg_helper_busy);
  lock.unlock();
  EXPECT_EQ(child_process(helper(), {"try", cluster->conninfo, name}).wait(), pg_helper_got);
}

TEST(PostgresLock, ThreadsSharingOneObjectTakeTurns) {
  FASTENERS_REQUIRE_SERVER();
  postgres_lock lock(unique_name("threads"), options_for(cluster->conninfo));
  long counter = 0;  // not atomic: the lock protects it
  std::atomic<int> inside{0}, overlaps{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        std::lock_guard<postgres_lock> guard(lock);
        if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
        ++counter;
        inside.fetch_sub(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 100);
  EXPECT_EQ(overlaps.load(), 0);
}

TEST(PostgresLock, TwoObjectsOnOneNameExcludeEachOtherHoweverSpelled) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("two-objects");
  postgres_lock a(name, options_for(cluster->conninfo));
  postgres_lock b(name, options_for(cluster->tcp_conninfo));  // same server, other spelling
  a.lock();
  std::thread([&] {
    EXPECT_FALSE(b.try_lock());
    EXPECT_FALSE(b.try_lock_for(200ms));
  }).join();
  // The calling thread asking through the other object: self-deadlock, not a hang.
  EXPECT_FALSE(b.try_lock());
  EXPECT_EQ(error_of([&] { b.lock(); }).code, std::errc::resource_deadlock_would_occur);
  a.unlock();
  std::thread([&] {
    EXPECT_TRUE(b.try_lock());
    b.unlock();
  }).join();
}

TEST(PostgresLock, SelfDeadlockAndMisuseAreErrors) {
  FASTENERS_REQUIRE_SERVER();
  postgres_lock lock(unique_name("misuse"), options_for(cluster->conninfo));
  auto never_locked = error_of([&] { lock.unlock(); });
  EXPECT_EQ(never_locked.code, std::errc::operation_not_permitted);
  EXPECT_NE(never_locked.what.find("misuse"), std::string::npos) << never_locked.what;
  EXPECT_EQ(error_of([&] { lock.ensure_held(); }).code, std::errc::operation_not_permitted);
  lock.lock();
  EXPECT_FALSE(lock.try_lock());
  EXPECT_EQ(error_of([&] { lock.lock(); }).code, std::errc::resource_deadlock_would_occur);
  EXPECT_EQ(error_of([&] { (void)lock.try_lock_for(100ms); }).code, std::errc::resource_deadlock_would_occur);
  std::thread([&] {
    EXPECT_EQ(error_of([&] { lock.unlock(); }).code, std::errc::operation_not_permitted);
    EXPECT_EQ(error_of([&] { lock.ensure_held(); }).code, std::errc::operation_not_permitted);
  }).join();
  lock.unlock();
  EXPECT_EQ(error_of([&] { lock.unlock(); }).code, std::errc::operation_not_permitted);

  postgres_reader_writer_lock rw(unique_name("misuse-rw"), options_for(cluster->conninfo));
  rw.lock_shared();
  EXPECT_TRUE(rw.is_reader());
  EXPECT_FALSE(rw.is_writer());
  EXPECT_FALSE(rw.try_lock());
  EXPECT_EQ(error_of([&] { rw.lock(); }).code, std::errc::resource_deadlock_would_occur);
  EXPECT_EQ(error_of([&] { rw.unlock(); }).code, std::errc::operation_not_permitted);
  rw.unlock_shared();
}

TEST(PostgresLock, TimedWaitGivesUpAfterItsTime) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("timed");
  child_process holder(helper(), {"hold", cluster->conninfo, name});
  ASSERT_TRUE(holder.wait_for_line("locked"));
  postgres_lock lock(name, options_for(cluster->conninfo));
  auto t0 = clock_type::now();
  EXPECT_FALSE(lock.try_lock_for(400ms));
  const double waited = seconds_since(t0);
  EXPECT_GE(waited, 0.39);
  EXPECT_LT(waited, 5.0);
  // A zero or negative timeout is one try.
  EXPECT_FALSE(lock.try_lock_for(0s));
  EXPECT_FALSE(lock.try_lock_for(-5s));
  EXPECT_FALSE(lock.try_lock_until(std::chrono::system_clock::now() - 1h));
  // The server's setting does not linger: a later wait for ever still works.
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    lock.lock();
    got.store(true);
    lock.unlock();
  });
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(got.load());
  t0 = clock_type::now();
  holder.close_stdin();
  waiter.join();
  EXPECT_TRUE(got.load());
  EXPECT_LT(seconds_since(t0), 10.0);
}

TEST(PostgresLock, TimedWaitGetsTheLockWhenReleased) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("timed-get");
  child_process holder(helper(), {"hold", cluster->conninfo, name});
  ASSERT_TRUE(holder.wait_for_line("locked"));
  postgres_lock lock(name, options_for(cluster->conninfo));
  std::thread releaser([&] {
    std::this_thread::sleep_for(500ms);
    holder.close_stdin();
  });
  const auto t0 = clock_type::now();
  EXPECT_TRUE(lock.try_lock_for(30s));
  EXPECT_GE(seconds_since(t0), 0.45);
  EXPECT_LT(seconds_since(t0), 15.0);
  releaser.join();
  lock.unlock();
}

TEST(PostgresReaderWriterLock, ReadersShareWritersExclude) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("rw");
  child_process reader(helper(), {"hold", cluster->conninfo, name, "shared"});
  ASSERT_TRUE(reader.wait_for_line("locked"));
  postgres_reader_writer_lock rw(name, options_for(cluster->conninfo));
  {
    auto r = rw.read_lock();
    EXPECT_TRUE(rw.is_reader());
  }
  EXPECT_FALSE(rw.try_lock());
  EXPECT_EQ(child_process(helper(), {"try", cluster->conninfo, name, "shared"}).wait(), pg_helper_got);
  EXPECT_EQ(child_process(helper(), {"try", cluster->conninfo, name}).wait(), pg_helper_busy);
  reader.close_stdin();
  EXPECT_EQ(reader.wait(), pg_helper_got);
  {
    auto w = rw.write_lock();
    EXPECT_TRUE(rw.is_writer());
    EXPECT_EQ(child_process(helper(), {"try", cluster->conninfo, name, "shared"}).wait(), pg_helper_busy);
  }
}

TEST(PostgresReaderWriterLock, AQueuedWriterHoldsBackNewReaders) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("fifo");
  child_process reader(helper(), {"hold", cluster->conninfo, name, "shared"});
  ASSERT_TRUE(reader.wait_for_line("locked"));
  postgres_reader_writer_lock writer(name, options_for(cluster->conninfo));
  std::atomic<bool> wrote{false};
  std::thread w([&] {
    auto guard = writer.write_lock();
    wrote.store(true);
  });
  ASSERT_TRUE(eventually([&] { return advisory_count(cluster->conninfo, name, false) == 1; }));
  // The server's queue is FIFO: a new reader waits behind the writer.
  EXPECT_EQ(child_process(helper(), {"wait", cluster->conninfo, name, "0.5", "shared"}).wait(), pg_helper_busy);
  EXPECT_FALSE(wrote.load());
  reader.close_stdin();
  w.join();
  EXPECT_TRUE(wrote.load());
}

TEST(PostgresLock, KilledHolderReleases) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("kill-holder");
  child_process holder(helper(), {"hold", cluster->conninfo, name});
  ASSERT_TRUE(holder.wait_for_line("locked"));
  postgres_lock lock(name, options_for(cluster->conninfo));
  EXPECT_FALSE(lock.try_lock());
  holder.kill_hard();
  EXPECT_TRUE(lock.try_lock_for(30s));
  lock.unlock();
}

TEST(PostgresLock, KilledWaiterLeavesTheQueueWithoutTakingTheLock) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("kill-waiter");
  postgres_lock lock(name, options_for(cluster->tcp_conninfo));
  lock.lock();
  child_process waiter(helper(), {"wait", cluster->tcp_conninfo, name, "600"});
  ASSERT_TRUE(eventually([&] { return advisory_count(cluster->conninfo, name, false) == 1; }));
  waiter.kill_hard();
  // client_connection_check_interval: its backend notices the closed socket
  // while it waits, and leaves the queue.
  EXPECT_TRUE(eventually([&] { return advisory_count(cluster->conninfo, name, false) == 0; }));
  lock.unlock();
  EXPECT_EQ(advisory_count(cluster->conninfo, name, true), 0);
  EXPECT_EQ(child_process(helper(), {"try", cluster->conninfo, name}).wait(), pg_helper_got);
}

TEST(PostgresLock, TerminatedSessionIsNoticedOnceAndTheObjectStaysUsable) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("terminate");
  postgres_options o = options_for(cluster->tcp_conninfo);
  o.liveness = 2s;
  postgres_lock lock(name, o);
  std::atomic<int> calls{0};
  lock.on_lost([&] { calls.fetch_add(1); });
  lock.lock();
  EXPECT_FALSE(lock.lost());
  const int pid = holder_pid(cluster->conninfo, name);
  ASSERT_NE(pid, 0);
  const auto t0 = clock_type::now();
  query_value(cluster->conninfo, "SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
  EXPECT_TRUE(eventually([&] { return lock.lost(); }, 10s));
  const double noticed = seconds_since(t0);
  EXPECT_LT(noticed, 2.0 + 3.0);  // liveness, and generous
  EXPECT_TRUE(eventually([&] { return calls.load() == 1; }, 10s));
  auto e = error_of([&] { lock.ensure_held(); });
  EXPECT_EQ(e.code, std::errc::connection_reset);
  EXPECT_THROW(lock.ensure_held(), lock_lost);
  EXPECT_NO_THROW(lock.unlock());
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(calls.load(), 1);
  // The next acquisition works, and clears lost().
  EXPECT_TRUE(lock.try_lock_for(10s));
  EXPECT_FALSE(lock.lost());
  EXPECT_NO_THROW(lock.ensure_held());
  lock.unlock();
}

// libpq prints an error that reaches an idle session ("FATAL: terminating
// connection due to administrator command") through its notice processor,
// by default on stderr: the application's, which the library leaves alone.
TEST(PostgresLock, ATerminatedSessionWritesNothingOnTheApplicationsStderr) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("quiet");
  postgres_options o = options_for(cluster->conninfo);
  o.liveness = 1s;
  char path[] = "/tmp/fasteners-stderr-XXXXXX";
  const int capture = ::mkstemp(path);
  ASSERT_GE(capture, 0);
  ::unlink(path);
  const int saved = ::dup(2);
  ASSERT_GE(saved, 0);
  ::dup2(capture, 2);
  bool lost = false;
  {
    postgres_lock lock(name, o);
    lock.lock();
    const int pid = holder_pid(cluster->conninfo, name);
    query_value(cluster->conninfo, "SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
    lost = eventually([&] { return lock.lost(); }, 10s);
    try {
      lock.ensure_held();
    } catch (const lock_lost&) {
    }
    lock.unlock();
    EXPECT_TRUE(lock.try_lock_for(10s));
    lock.unlock();
  }
  ::dup2(saved, 2);
  ::close(saved);
  EXPECT_TRUE(lost);
  const off_t size = ::lseek(capture, 0, SEEK_END);
  std::string written(static_cast<std::size_t>(std::max<off_t>(size, 0)), '\0');
  if (size > 0) {
    EXPECT_EQ(::pread(capture, written.data(), written.size(), 0), size);
  }
  ::close(capture);
  EXPECT_EQ(written, "");
}

TEST(PostgresLock, FencingTokensIncreaseAcrossAcquisitionsAndProcesses) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("fencing");
  postgres_options o = options_for(cluster->conninfo);
  o.fencing_tokens = true;
  postgres_lock lock(name, o);
  EXPECT_EQ(lock.fencing_token(), 0);
  std::int64_t last = 0;
  for (int i = 0; i < 3; ++i) {
    lock.lock();
    const std::int64_t t = lock.fencing_token();
    EXPECT_GT(t, last);
    last = t;
    lock.unlock();
    EXPECT_EQ(lock.fencing_token(), 0);
    child_process other(helper(), {"tokens", cluster->conninfo, name, "2"});
    const std::string out = other.read_all();
    ASSERT_EQ(other.wait(), pg_helper_got);
    std::istringstream in(out);
    std::int64_t v = 0;
    while (in >> v) {
      EXPECT_GT(v, last);
      last = v;
    }
  }
  postgres_lock plain(name, options_for(cluster->conninfo));
  // Another object on the same record asked for them: the record draws them.
  plain.lock();
  EXPECT_GT(plain.fencing_token(), last);
  plain.unlock();
}

TEST(PostgresLock, BadConninfoAndUnreachableServerAreErrorsNotHangs) {
  postgres_lock bad("bad", postgres_options{"this is = not a conninfo"});
  auto e = error_of([&] { bad.lock(); });
  EXPECT_EQ(e.code, std::errc::invalid_argument);
  EXPECT_NE(e.what.find("postgres lock 'bad'"), std::string::npos) << e.what;

  // A closed loopback port: refused at once.
  postgres_lock closed("closed", postgres_options{"host=127.0.0.1 port=1 connect_timeout=5 dbname=x"});
  const auto t0 = clock_type::now();
  e = error_of([&] { (void)closed.try_lock(); });
  EXPECT_EQ(e.code, std::errc::connection_refused) << e.what;
  EXPECT_NE(e.what.find("cannot connect"), std::string::npos) << e.what;
  EXPECT_LT(seconds_since(t0), 7.0);
}

TEST(PostgresLock, WrongDatabaseIsAnError) {
  FASTENERS_REQUIRE_SERVER();
  postgres_lock lock("x", postgres_options{cluster->conninfo + " dbname=no_such_database"});
  auto e = error_of([&] { lock.lock(); });
  EXPECT_NE(e.code, std::errc{});
  EXPECT_NE(e.what.find("no_such_database"), std::string::npos) << e.what;
}

TEST(PostgresLock, UnknownRoleIsRefusedAuthorizationNotConnectionRefused) {
  FASTENERS_REQUIRE_SERVER();
  postgres_lock lock("x", postgres_options{cluster->conninfo + " user=no_such_role"});
  auto e = error_of([&] { lock.lock(); });
  EXPECT_EQ(e.code, std::errc::permission_denied) << e.what;
  EXPECT_NE(e.what.find("no_such_role"), std::string::npos) << e.what;
}

TEST(PostgresLock, DeadlockAcrossTwoNamesIsNotSeenByTheServerATimedWaitEndsIt) {
  // Each name waits on its own session, so the server's wait-for graph never
  // shows that our session holding B waits (in this process) for our session
  // waiting for A: no 40P01 here. Documented; timed waits are the remedy.
  FASTENERS_REQUIRE_SERVER();
  const std::string a_name = unique_name("dl-a"), b_name = unique_name("dl-b");
  postgres_lock b(b_name, options_for(cluster->conninfo)), a(a_name, options_for(cluster->conninfo));
  b.lock();
  child_process other(helper(), {"deadlock", cluster->conninfo, a_name, b_name});
  ASSERT_TRUE(other.wait_for_line("locked"));
  other.write_line("go");
  ASSERT_TRUE(eventually([&] { return advisory_count(cluster->conninfo, b_name, false) == 1; }));
  EXPECT_FALSE(a.try_lock_for(1500ms));
  b.unlock();
  EXPECT_EQ(other.wait(), pg_helper_got);
}

#if defined(__SANITIZE_THREAD__)
#define FASTENERS_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FASTENERS_UNDER_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define FASTENERS_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FASTENERS_UNDER_ASAN 1
#endif
#endif

TEST(PostgresLock, CancelledWaiterLeavesNothingBehind) {
#if defined(FASTENERS_UNDER_TSAN)
  GTEST_SKIP() << "ThreadSanitizer does not follow pthread_cancel's forced unwind (it reports the unwound guard's "
                  "mutex as never unlocked); run in the other suites";
#endif
#if defined(FASTENERS_UNDER_ASAN)
  // Reproduced without fasteners or libpq: a thread cancelled in poll() a few
  // instrumented frames below one with a destructor.
  GTEST_SKIP() << "AddressSanitizer cannot follow pthread_cancel's forced unwind: the cleanup landing pad calls "
                  "__asan_handle_no_return, whose sigaltstack() call lands on the unwound frames' stale poison and "
                  "is reported (CHECK failed asan_thread.cpp:371 kCurrentStackFrameMagic, or a stack-buffer-overflow "
                  "if the stale frame is intact; google/sanitizers#1399); the plain and clang suites run this test";
#endif
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("cancel");
  child_process holder(helper(), {"hold", cluster->conninfo, name});
  ASSERT_TRUE(holder.wait_for_line("locked"));
  postgres_lock lock(name, options_for(cluster->conninfo));
  pthread_t waiter{};
  struct args_t {
    postgres_lock* lock;
  } args{&lock};
  ASSERT_EQ(pthread_create(
                &waiter, nullptr,
                [](void* p) -> void* {
                  static_cast<args_t*>(p)->lock->lock();
                  return nullptr;
                },
                &args),
            0);
  ASSERT_TRUE(eventually([&] { return advisory_count(cluster->conninfo, name, false) == 1; }));
  pthread_cancel(waiter);
  pthread_join(waiter, nullptr);
  EXPECT_TRUE(eventually([&] { return advisory_count(cluster->conninfo, name, false) == 0; }));
  holder.close_stdin();
  EXPECT_EQ(holder.wait(), pg_helper_got);
  EXPECT_EQ(advisory_count(cluster->conninfo, name, true), 0);
  EXPECT_TRUE(lock.try_lock_for(10s));
  lock.unlock();
}

TEST(PostgresLock, ForkChildNeverReleasesTheParentsLock) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("fork");
  postgres_lock lock(name, options_for(cluster->conninfo));
  lock.lock();
  const pid_t child = fork();
  if (child == 0) {
    int code = 0;
    try {
      lock.unlock();
      code = 1;
    } catch (const std::system_error& e) {
      code = e.code() == std::errc::operation_not_permitted ? 0 : 2;
    }
    _exit(code);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // Still ours: the child closed its copy of the socket without a word.
  EXPECT_EQ(advisory_count(cluster->conninfo, name, true), 1);
  EXPECT_NO_THROW(lock.ensure_held());
  lock.unlock();
}

// Issue 9's bug 1, for postgres locks: a fork child must not hang on a
// mutex of the lock object that a parent thread held at fork() time. Here a
// parent thread is inside its first lock() on the object, connecting to a
// "server" that accepted the connection and never answers (the object used
// to hold its own mutex all the while); the child asks the same object.
TEST(PostgresLock, ForkChildDoesNotHangOnAnObjectAParentThreadIsResolving) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  postgres_lock lock("silent", postgres_options{"host=127.0.0.1 port=" + std::to_string(ntohs(address.sin_port)) +
                                                " connect_timeout=3 dbname=x user=x"});
  std::thread first([&] { (void)error_of([&] { (void)lock.try_lock(); }); });
  const int accepted = ::accept(listener, nullptr, nullptr);  // the thread is connecting now
  ASSERT_GE(accepted, 0);
  const pid_t child = fork();
  if (child == 0) {
    // Nothing that allocates: other threads of the parent existed at fork().
    _exit(!lock.owns_lock() && !lock.lost() ? 0 : 1);
  }
  int status = 0;
  pid_t reaped = 0;
  const auto until = clock_type::now() + 20s;
  while ((reaped = waitpid(child, &status, WNOHANG)) == 0 && clock_type::now() < until) {
    std::this_thread::sleep_for(10ms);
  }
  if (reaped == 0) {
    ::kill(child, SIGKILL);
    waitpid(child, &status, 0);
  }
  EXPECT_EQ(reaped, child) << "the fork child hung on the lock object";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  first.join();
  ::close(accepted);
  ::close(listener);
}

// libpq closes a broken connection's socket itself. Its number, reused by
// a pipe, was still on the list of sockets every fork child closes: the
// child lost that pipe (the tooz holder of PostgresTooz.ToozHolderExcludesUs
// lost its stdin, read end of file, and let go of the lock at once).
TEST(PostgresLock, ALostSessionsSocketNumberIsNotClosedInForkChildrenOnceReused) {
  FASTENERS_REQUIRE_SERVER();
  const std::string name = unique_name("stale-fd");
  postgres_options o = options_for(cluster->tcp_conninfo);
  o.liveness = 500ms;
  postgres_lock lock(name, o);
  lock.lock();
  const int pid = holder_pid(cluster->conninfo, name);
  ASSERT_NE(pid, 0);
  query_value(cluster->conninfo, "SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
  ASSERT_TRUE(eventually([&] { return lock.lost(); }, 10s));
  lock.unlock();
  std::vector<int> fds;
  for (int i = 0; i < 16; ++i) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    fds.insert(fds.end(), {p[0], p[1]});
  }
  const pid_t child = fork();
  if (child == 0) {
    int closed = 0;
    for (int fd : fds) closed += ::fcntl(fd, F_GETFD) == -1 ? 1 : 0;
    _exit(closed);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "descriptors closed in the fork child";
  for (int fd : fds) ::close(fd);
}

TEST(PostgresLock, ServerRestartLosesHoldersFailsWaitersAndNewLocksWork) {
  FASTENERS_REQUIRE_SERVER();
  auto own = start_cluster();
  ASSERT_TRUE(own.has_value()) << no_server_reason();
  postgres_options o = options_for(own->conninfo);
  o.liveness = 2s;
  postgres_lock held(unique_name("restart-held"), o);
  std::atomic<int> calls{0};
  held.on_lost([&] { calls.fetch_add(1); });
  held.lock();
  const std::string contended = unique_name("restart-wait");
  child_process holder(helper(), {"hold", own->conninfo, contended});
  ASSERT_TRUE(holder.wait_for_line("locked"));
  postgres_lock waiter(contended, o);
  std::atomic<int> waiter_error{-1};
  std::thread w([&] {
    auto e = error_of([&] { waiter.lock(); });
    waiter_error.store(static_cast<int>(e.code));
  });
  ASSERT_TRUE(eventually([&] { return advisory_count(own->conninfo, contended, false) == 1; }));
  EXPECT_EQ(cluster_script("halt '" + own->dir + "' immediate"), 0);
  EXPECT_TRUE(eventually([&] { return held.lost(); }, 10s));
  w.join();
  EXPECT_NE(waiter_error.load(), 0);  // an error, not a lock
  EXPECT_NE(waiter_error.load(), -1);
  EXPECT_EQ(cluster_script("resume '" + own->dir + "'"), 0);
  EXPECT_THROW(held.ensure_held(), lock_lost);
  EXPECT_NO_THROW(held.unlock());
  EXPECT_EQ(calls.load(), 1);
  EXPECT_TRUE(held.try_lock_for(10s));
  EXPECT_FALSE(held.lost());
  held.unlock();
  EXPECT_TRUE(waiter.try_lock_for(10s));  // the helper's session died with the server
  waiter.unlock();
  holder.kill_hard();
  stop_cluster(*own);
}

}  // namespace
}  // namespace fasteners::test

namespace fasteners::test {
namespace {

// A partition between holder and server (tests/postgres/partition.sh, in a
// private network namespace): the holder must give up before the server
// frees the lock, or two holders would each believe they hold it.
// What the partition test needs from the machine; "" when it is all there.
std::string partition_test_unavailable() {
  if (std::system("unshare -n true >/dev/null 2>&1") != 0) {
    return "unshare -n is not permitted here (needs root or user namespaces)";
  }
  if (std::system("command -v nft >/dev/null 2>&1") != 0) return "no nft (apt-get install nftables)";
  if (std::system("ls -d /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1") != 0) {
    return "no PostgreSQL server binaries to start a cluster inside the namespace";
  }
  return "";
}

TEST(PostgresPartition, HolderNoticesBeforeTheServerFreesTheLock) {
  // CI (FASTENERS_REQUIRE_POSTGRES=1) runs as root with the packages
  // installed: there a missing piece is a failure, not a skip.
  if (const std::string why = partition_test_unavailable(); !why.empty()) {
    const char* require = std::getenv("FASTENERS_REQUIRE_POSTGRES");
    if (require != nullptr && std::string(require) == "1") FAIL() << "FASTENERS_REQUIRE_POSTGRES=1 but " << why;
    GTEST_SKIP() << why;
  }
  const int liveness_ms = 2000;
  child_process run("/usr/bin/unshare", {"-n", std::string(FASTENERS_SOURCE_DIR) + "/tests/postgres/partition.sh",
                                         helper(), FASTENERS_SOURCE_DIR, std::to_string(liveness_ms)});
  const std::string out = run.read_all(std::chrono::seconds(120));
  ASSERT_EQ(run.wait(), 0) << out;
  const auto noticed_at = out.find("noticed_ms="), freed_at = out.find("freed_ms=");
  ASSERT_NE(noticed_at, std::string::npos) << out;
  ASSERT_NE(freed_at, std::string::npos) << out;
  const long noticed = std::atol(out.c_str() + noticed_at + 11), freed = std::atol(out.c_str() + freed_at + 9);
  std::printf("partition: holder noticed after %ld ms, server freed the lock after %ld ms (liveness %d ms)\n", noticed,
              freed, liveness_ms);
  EXPECT_LT(noticed, freed);
  EXPECT_LT(noticed, liveness_ms + 3000);  // within liveness, generously
}

}  // namespace
}  // namespace fasteners::test
