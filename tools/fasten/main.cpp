// fasten: run a command while holding a fasteners lock; a portable flock(1)
// on the whole-file fcntl locks that Python fasteners and lockf(3) use.
// Platform code lives in run_command_*.cpp and status_*.cpp.
#include <fasteners/interprocess_lock.hpp>
#include <fasteners/version.hpp>

#include "exit_codes.hpp"
#include "lock_status.hpp"
#include "options.hpp"
#include "run_command.hpp"
#if defined(FASTEN_WITH_POSTGRES)
#include "postgres_mode.hpp"
#endif

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace {

namespace fs = std::filesystem;
using fasten::options;

std::string quoted(const std::string& path) { return "'" + path + "'"; }

std::string seconds_since(std::chrono::steady_clock::time_point start) {
  const std::chrono::duration<double> waited = std::chrono::steady_clock::now() - start;
  char text[32];
  std::snprintf(text, sizeof text, "%.6f s", waited.count());
  return text;
}

// One line naming the path and what is wrong with it, and a sysexits status.
int report_unusable(const std::string& path, const std::error_code& code) {
  std::error_code ignored;
  const auto type = fs::symlink_status(path, ignored).type();
  std::string why;
  bool wrong_kind = true;
  switch (type) {
    case fs::file_type::directory:
      why = "is a directory";
      break;
    case fs::file_type::symlink:
      why = "is a symbolic link (fasten does not follow them)";
      break;
    case fs::file_type::fifo:
      why = "is a FIFO";
      break;
    case fs::file_type::socket:
      why = "is a socket";
      break;
    case fs::file_type::block:
    case fs::file_type::character:
      why = "is a device";
      break;
    default:
      wrong_kind = false;
      why = code.message();
  }
  std::cerr << "fasten: cannot use " << quoted(path) << " as a lock file: " << why << "\n";
  using std::errc;
  if (code == errc::permission_denied || code == errc::operation_not_permitted) return fasten::exit_code::no_permission;
  if (wrong_kind || code == errc::is_a_directory || code == errc::too_many_symbolic_link_levels ||
      code == errc::not_a_directory || code == errc::invalid_argument || code == errc::filename_too_long ||
      code == errc::no_such_device_or_address) {
    return fasten::exit_code::no_input;
  }
  if (code == errc::read_only_file_system || code == errc::no_space_on_device ||
      code == errc::no_such_file_or_directory) {
    return fasten::exit_code::cant_create;
  }
  return fasten::exit_code::os_error;
}

std::string describe_holders(const std::vector<fasten::lock_holder>& holders) {
  std::ostringstream out;
  for (std::size_t i = 0; i < holders.size(); ++i) {
    out << (i == 0 ? "" : ", ") << "pid " << holders[i].pid;
    if (!holders[i].name.empty()) out << " (" << holders[i].name << ")";
  }
  return out.str();
}

int show_status(const options& opt) {
  fasten::lock_status status;
  try {
    status = fasten::query_lock_status(opt.lock_file);
  } catch (const std::system_error& e) {
    return report_unusable(opt.lock_file, e.code());
  }
  std::cout << opt.lock_file << ": ";
  int code = fasten::exit_code::status_free;
  switch (status.state) {
    case fasten::lock_state::missing:
      std::cout << "free (no such file)\n";
      return fasten::exit_code::status_free;
    case fasten::lock_state::free:
      std::cout << "free";
      break;
    case fasten::lock_state::shared:
      std::cout << "held shared";
      code = fasten::exit_code::status_shared;
      break;
    case fasten::lock_state::exclusive:
      std::cout << "held exclusive";
      code = fasten::exit_code::status_exclusive;
      break;
  }
  if (code != fasten::exit_code::status_free) {
    std::cout << (status.holders.empty() ? " (holders not visible)" : " by " + describe_holders(status.holders));
  }
  std::cout << "\n";
  if (!status.flock_holders.empty()) {
    std::cout << opt.lock_file << ": also flock(2)-locked by " << describe_holders(status.flock_holders)
              << "; flock(2) locks do not exclude fasten's\n";
  }
  return code;
}

int run(const options& opt) {
  const char* kind = opt.shared ? "shared" : "exclusive";
  auto lock = std::make_unique<fasteners::interprocess_reader_writer_lock>(opt.lock_file);
  const auto start = std::chrono::steady_clock::now();
  const bool single_try = opt.nonblocking || (opt.timeout_seconds && *opt.timeout_seconds <= 0);
  bool got = false;
  try {
    got = opt.shared ? lock->try_lock_shared() : lock->try_lock();
    if (!got && !single_try) {
      if (opt.verbose) std::cerr << "fasten: " << quoted(opt.lock_file) << " is locked; waiting\n";
      // SIGINT, SIGTERM and SIGHUP keep their default action while we wait:
      // fasten dies of them (the shell reports 130, 143, 129) and the kernel
      // drops the pending request with the process.
      if (opt.timeout_seconds) {
        const std::chrono::duration<double> timeout(*opt.timeout_seconds);
        got = opt.shared ? lock->try_lock_shared_for(timeout) : lock->try_lock_for(timeout);
      } else {
        opt.shared ? lock->lock_shared() : lock->lock();
        got = true;
      }
    }
  } catch (const std::system_error& e) {
    return report_unusable(opt.lock_file, e.code());
  }
  if (!got) {
    if (opt.verbose) {
      std::cerr << "fasten: gave up after " << seconds_since(start) << ": " << quoted(opt.lock_file) << " is locked\n";
    }
    return opt.conflict_exit_code;
  }
  if (opt.verbose) {
    std::cerr << "fasten: waited " << seconds_since(start) << " for the " << kind << " lock on "
              << quoted(opt.lock_file) << "\n";
  }

  fasten::command_request request;
  request.argv = opt.shell_command ? fasten::shell_command(*opt.shell_command) : opt.command;
  if (!opt.close_before_exec) request.inherit_lock_handle = lock->native_handle();
  bool inherited = false;
  const int status = fasten::run_command(request, inherited);
  if (inherited) {
    // The command's descendants may still hold the lock through the inherited
    // descriptor, as with flock(1); unlocking would take it from them. Our
    // descriptor closes at exit, and the lock goes with the last one.
    static fasteners::interprocess_reader_writer_lock* kept_for_the_command = lock.release();
    (void)kept_for_the_command;
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  options opt;
  try {
    opt = fasten::parse_command_line(args);
  } catch (const fasten::usage_error& e) {
    std::cerr << "fasten: " << e.what() << "\n" << fasten::short_usage();
    return fasten::exit_code::usage;
  }
  if (opt.postgres_conninfo && (opt.what == fasten::action::run || opt.what == fasten::action::status)) {
#if defined(FASTEN_WITH_POSTGRES)
    return opt.what == fasten::action::run ? fasten::run_postgres(opt) : fasten::show_postgres_status(opt);
#else
    std::cerr << "fasten: --postgres: this fasten was built without the postgres component\n";
    return fasten::exit_code::usage;
#endif
  }
  try {
    switch (opt.what) {
      case fasten::action::help:
        std::cout << fasten::help_text();
        return 0;
      case fasten::action::version:
        std::cout << "fasten (fasteners for C++) " << fasteners::version_string << "\n"
                  << "locks: " << FASTEN_LOCK_BACKEND
                  << (fasten::command_can_inherit_lock() ? "; the command inherits the lock unless -o\n"
                                                         : "; the lock stays with fasten, -o changes nothing\n");
        return 0;
      case fasten::action::status:
        return show_status(opt);
      case fasten::action::run:
        return run(opt);
    }
  } catch (const std::exception& e) {
    std::cerr << "fasten: " << e.what() << "\n";
    return fasten::exit_code::os_error;
  }
  return fasten::exit_code::os_error;
}
