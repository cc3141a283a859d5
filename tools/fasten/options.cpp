#include "options.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace fasten {

namespace {

struct option_spec {
  const char* long_name;
  char short_name;  // '\0': long form only
  bool takes_value;
};

// flock(1)'s spellings, including its aliases (-e, --nonblocking, --wait).
// Entries with the same short name are one option.
constexpr option_spec known_options[] = {
    {"exclusive", 'x', false},
    {"shared", 's', false},
    {"nonblock", 'n', false},
    {"nonblocking", 'n', false},
    {"timeout", 'w', true},
    {"wait", 'w', true},
    {"conflict-exit-code", 'E', true},
    {"close", 'o', false},
    {"verbose", 'v', false},
    {"postgres", '\x01', true},
    {"tooz", '\x02', false},
    {"status", '\0', false},
    {"help", 'h', false},
    {"version", 'V', false},
};

const option_spec* find_short(char c) {
  if (c == 'e') c = 'x';
  for (const auto& spec : known_options) {
    if (spec.short_name == c) return &spec;
  }
  return nullptr;
}

// Exact name, or an unambiguous prefix as getopt_long allows ("--time").
const option_spec* find_long(const std::string& name) {
  const option_spec* prefix_match = nullptr;
  bool ambiguous = false;
  for (const auto& spec : known_options) {
    const std::string candidate = spec.long_name;
    if (candidate == name) return &spec;
    if (candidate.compare(0, name.size(), name) == 0) {
      // Two spellings of one option (--nonblock, --nonblocking) are not ambiguous.
      if (prefix_match != nullptr && prefix_match->short_name != spec.short_name) ambiguous = true;
      if (prefix_match == nullptr) prefix_match = &spec;
    }
  }
  if (ambiguous) throw usage_error("option '--" + name + "' is ambiguous");
  return prefix_match;
}

// Decimal seconds: "10", "0.25", ".5". No sign, exponent, hex, inf or nan.
double parse_seconds(const std::string& text, const std::string& option) {
  bool digit = false;
  bool dot = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      digit = false;
      break;
    }
  }
  if (!digit) throw usage_error("invalid timeout '" + text + "' for " + option + " (seconds, e.g. 10 or 0.25)");
  errno = 0;
  const double value = std::strtod(text.c_str(), nullptr);
  // A huge value (ERANGE gives HUGE_VAL) simply means "wait a very long time".
  if (std::isnan(value) || value < 0) throw usage_error("invalid timeout '" + text + "' for " + option);
  return value;
}

int parse_exit_code(const std::string& text, const std::string& option) {
  int value = 0;
  bool ok = !text.empty() && text.size() <= 3;
  for (char c : text) {
    if (c < '0' || c > '9') {
      ok = false;
      break;
    }
    value = value * 10 + (c - '0');
  }
  if (!ok || value > 255) throw usage_error("invalid exit code '" + text + "' for " + option + " (0 to 255)");
  return value;
}

// Applies one option; returns true if parsing is over (-h, -V).
bool apply(const option_spec& spec, const std::string& spelled, const std::string* value, options& out) {
  switch (spec.short_name) {
    case 'x':
      out.shared = false;
      break;
    case 's':
      out.shared = true;
      break;
    case 'n':
      out.nonblocking = true;
      break;
    case 'w':
      out.timeout_seconds = parse_seconds(*value, spelled);
      break;
    case 'E':
      out.conflict_exit_code = parse_exit_code(*value, spelled);
      break;
    case 'o':
      out.close_before_exec = true;
      break;
    case 'v':
      out.verbose = true;
      break;
    case '\x01':  // --postgres CONNINFO: LOCKFILE is then a lock name on that server
      out.postgres_conninfo = *value;
      break;
    case '\x02':
      out.tooz = true;
      break;
    case 'h':
      out.what = action::help;
      return true;
    case 'V':
      out.what = action::version;
      return true;
    default:  // --status
      out.what = action::status;
      break;
  }
  return false;
}

}  // namespace

options parse_command_line(const std::vector<std::string>& args) {
  options out;
  std::size_t i = 0;
  // Options come before LOCKFILE; everything after it belongs to the command.
  while (i < args.size()) {
    const std::string& arg = args[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') break;
    ++i;
    if (arg[1] == '-') {
      const auto equals = arg.find('=');
      const std::string name = arg.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
      const option_spec* spec = find_long(name);
      if (spec == nullptr) throw usage_error("unknown option '--" + name + "'");
      const std::string spelled = std::string("--") + spec->long_name;
      std::string value;
      if (spec->takes_value) {
        if (equals != std::string::npos) {
          value = arg.substr(equals + 1);
        } else if (i < args.size()) {
          value = args[i++];
        } else {
          throw usage_error("option '" + spelled + "' needs a value");
        }
      } else if (equals != std::string::npos) {
        throw usage_error("option '" + spelled + "' takes no value");
      }
      if (apply(*spec, spelled, &value, out)) return out;
      continue;
    }
    // A cluster of short options: -sn, -w0.5, -w 0.5.
    for (std::size_t j = 1; j < arg.size(); ++j) {
      const option_spec* spec = find_short(arg[j]);
      const std::string spelled = std::string("-") + arg[j];
      if (spec == nullptr) throw usage_error("unknown option '" + spelled + "'");
      std::string value;
      if (spec->takes_value) {
        if (j + 1 < arg.size()) {
          value = arg.substr(j + 1);
        } else if (i < args.size()) {
          value = args[i++];
        } else {
          throw usage_error("option '" + spelled + "' needs a value");
        }
        if (apply(*spec, spelled, &value, out)) return out;
        break;
      }
      if (apply(*spec, spelled, &value, out)) return out;
    }
  }

  if (i >= args.size()) throw usage_error("no lock file given");
  out.lock_file = args[i++];
  if (out.lock_file.empty()) throw usage_error("the lock file name is empty");
  if (out.tooz && !out.postgres_conninfo) throw usage_error("--tooz needs --postgres");

  if (out.what == action::status) {
    if (i < args.size()) throw usage_error("--status takes a lock file and nothing else");
    return out;
  }
  // "fasten LOCKFILE -- COMMAND" reads naturally; no real command is named "--".
  if (i < args.size() && args[i] == "--") ++i;
  if (i < args.size() && (args[i] == "-c" || args[i] == "--command")) {
    if (args.size() - i != 2) throw usage_error(args[i] + " needs exactly one command argument");
    out.shell_command = args[i + 1];
    return out;
  }
  if (i >= args.size()) throw usage_error("no command given");
  out.command.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  return out;
}

const char* short_usage() {
  return "usage: fasten [options] LOCKFILE COMMAND [ARG...]\n"
         "       fasten [options] LOCKFILE -c 'SHELL COMMAND'\n"
         "       fasten --status LOCKFILE\n"
         "       fasten --postgres CONNINFO [--tooz] [options] NAME COMMAND [ARG...]\n"
         "Try 'fasten --help' for more information.\n";
}

const char* help_text() {
  return "fasten - run a command while holding a lock on LOCKFILE\n"
         "\n"
         "usage: fasten [options] LOCKFILE COMMAND [ARG...]\n"
         "       fasten [options] LOCKFILE -c 'SHELL COMMAND'\n"
         "       fasten --status LOCKFILE\n"
         "\n"
         "The lock is a whole-file fcntl(2) record lock, the one Python fasteners,\n"
         "lockf(3) and the fasteners C++ library take (not flock(2), which flock(1)\n"
         "takes). LOCKFILE and missing parent directories are created; the file's\n"
         "content is never touched.\n"
         "\n"
         "Options:\n"
         "  -x, --exclusive             take an exclusive (write) lock; the default\n"
         "  -s, --shared                take a shared (read) lock\n"
         "  -n, --nonblock              do not wait: exit with the conflict code if held\n"
         "  -w, --timeout SECONDS       wait at most SECONDS (fractions allowed; 0 acts as -n)\n"
         "  -E, --conflict-exit-code N  exit status when -n or -w gives up (default 1)\n"
         "  -o, --close                 the command does not inherit the lock\n"
         "  -c, --command CMD           after LOCKFILE: run CMD with /bin/sh -c\n"
         "  -v, --verbose               tell on stderr how long the wait took\n"
         "      --status                say whether LOCKFILE is free, held shared or held\n"
         "                              exclusive, and by which processes; takes no lock\n"
         "      --postgres CONNINFO     lock NAME on that PostgreSQL server (advisory lock)\n"
         "                              instead of a lock file; lost lock: exit 75\n"
         "      --tooz                  with --postgres: the keys OpenStack tooz takes\n"
         "  -h, --help                  show this help and exit\n"
         "  -V, --version               show the version and exit\n"
         "\n"
         "Exit status: the command's, or 128+N if signal N killed it; the conflict code\n"
         "when -n/-w gives up; 126 command not executable, 127 command not found;\n"
         "64 usage error; 66 LOCKFILE is not a usable file (directory, FIFO, symlink...);\n"
         "71 system error; 73 LOCKFILE cannot be created; 77 permission denied;\n"
         "with --postgres: 71 server unreachable or gone, 77 authentication refused,\n"
         "75 the lock was lost while the command ran (it got SIGTERM).\n"
         "--status exits 0 free (or no such file), 1 held shared, 2 held exclusive.\n";
}

}  // namespace fasten
