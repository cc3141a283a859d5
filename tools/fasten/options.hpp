// fasten's command line. Parsed by hand, in flock(1)'s spelling, so that every
// platform accepts exactly the same options.
#pragma once

#include "exit_codes.hpp"

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace fasten {

enum class action { run, status, help, version };

struct options {
  action what = action::run;
  bool shared = false;                                   // -s; -x (the default) clears it
  bool nonblocking = false;                              // -n
  std::optional<double> timeout_seconds;                 // -w; 0 acts as -n
  int conflict_exit_code = exit_code::default_conflict;  // -E
  bool close_before_exec = false;                        // -o
  bool verbose = false;                                  // -v
  std::string lock_file;
  std::vector<std::string> command;          // COMMAND [ARG...]
  std::optional<std::string> shell_command;  // -c 'CMD'
  // --postgres CONNINFO: lock_file is a lock name on that server (--tooz: tooz's keys).
  std::optional<std::string> postgres_conninfo;
  bool tooz = false;
};

// A malformed command line; what() says what is wrong, without "fasten: ".
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// `args` excludes argv[0]. Throws usage_error.
options parse_command_line(const std::vector<std::string>& args);

// "usage: ..." lines for stderr after a usage error.
const char* short_usage();
// Everything -h prints.
const char* help_text();

}  // namespace fasten
