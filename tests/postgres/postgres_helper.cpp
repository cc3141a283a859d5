// Re-executed by the postgres tests as another process (another "machine").
//   hold CONNINFO NAME [shared|tooz]   lock, print "locked", hold until stdin closes
//   try CONNINFO NAME [shared]         one try: exit got / busy
//   wait CONNINFO NAME SECONDS [shared] try_lock_for: exit got / busy
//   tokens CONNINFO NAME N             N exclusive acquisitions, print each fencing token
//   deadlock CONNINFO A B               lock A, print "locked", on a line from stdin lock B:
//                                       exit got, or deadlock if the server picked us
//   partition CONNINFO NAME LIVENESS_MS  lock, print "locked", then "lost <epoch ms>" when lost
#include <fasteners/postgres_lock.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

namespace {

// Exit codes (see postgres_test_support.hpp).
constexpr int exit_got = 0;
constexpr int exit_busy = 1;
constexpr int exit_deadlock = 3;
constexpr int exit_usage = 64;
constexpr int exit_error = 70;

long long epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void wait_for_stdin_close() {
  std::string line;
  while (std::getline(std::cin, line)) {
  }
}

int run(int argc, char** argv) {
  if (argc < 4) return exit_usage;
  const std::string command = argv[1];
  fasteners::postgres_options options{argv[2]};
  const std::string name = argv[3];
  const std::string flavour = argc > 4 ? argv[argc - 1] : "";
  if (flavour == "tooz") options.key_scheme = fasteners::postgres_key_scheme::tooz;
  const bool shared = flavour == "shared";
  if (command == "hold") {
    fasteners::postgres_reader_writer_lock lock(name, options);
    if (shared) {
      lock.lock_shared();
    } else {
      lock.lock();
    }
    std::cout << "locked" << std::endl;
    wait_for_stdin_close();
    return exit_got;
  }
  if (command == "try") {
    fasteners::postgres_reader_writer_lock lock(name, options);
    return (shared ? lock.try_lock_shared() : lock.try_lock()) ? exit_got : exit_busy;
  }
  if (command == "wait" && argc > 4) {
    fasteners::postgres_reader_writer_lock lock(name, options);
    const auto timeout = std::chrono::duration<double>(std::atof(argv[4]));
    return (shared ? lock.try_lock_shared_for(timeout) : lock.try_lock_for(timeout)) ? exit_got : exit_busy;
  }
  if (command == "tokens" && argc > 4) {
    options.fencing_tokens = true;
    fasteners::postgres_lock lock(name, options);
    for (int i = 0; i < std::atoi(argv[4]); ++i) {
      lock.lock();
      std::cout << lock.fencing_token() << std::endl;
      lock.unlock();
    }
    return exit_got;
  }
  if (command == "deadlock" && argc > 4) {
    fasteners::postgres_lock a(name, options), b(argv[4], options);
    a.lock();
    std::cout << "locked" << std::endl;
    std::string line;
    std::getline(std::cin, line);
    try {
      b.lock();
    } catch (const std::system_error& e) {
      if (e.code() == std::errc::resource_deadlock_would_occur) return exit_deadlock;
      throw;
    }
    b.unlock();
    return exit_got;
  }
  if (command == "partition" && argc > 4) {
    options.liveness = std::chrono::milliseconds(std::atoi(argv[4]));
    fasteners::postgres_lock lock(name, options);
    std::atomic<bool> lost{false};
    lock.on_lost([&] { lost.store(true); });
    lock.lock();
    std::cout << "locked" << std::endl;
    while (!lost.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::cout << "lost " << epoch_ms() << std::endl;
    lock.unlock();
    return exit_got;
  }
  return exit_usage;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "postgres_helper: " << e.what() << std::endl;
    return exit_error;
  }
}
