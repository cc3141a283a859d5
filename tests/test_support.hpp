// Shared test plumbing: temporary directories and helper processes.
#pragma once

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace fasteners::test {

// A fresh directory, removed with everything in it at scope exit.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Path of the cross-process helper binary (tests/helper/test_helper.cpp).
std::string helper_binary();

// A child process with its stdin and stdout connected to us.
class child_process {
 public:
  // Starts `program` with `args`; throws on failure.
  child_process(const std::string& program, const std::vector<std::string>& args);
  // Starts the test helper with `args`.
  static child_process helper(const std::vector<std::string>& args) { return child_process(helper_binary(), args); }
  child_process(child_process&&) noexcept;
  child_process& operator=(child_process&&) noexcept;
  ~child_process();  // kills and reaps the child if still running

  // Reads stdout until a line equal to `line` arrives; false on EOF or timeout.
  bool wait_for_line(const std::string& line, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Everything the child printed until now / until it exits.
  std::string read_all(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  void write_line(const std::string& line);
  void close_stdin();
  // Waits for exit; returns the exit code, or 128+N if killed by signal N;
  // nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout = std::chrono::seconds(120));
  void kill_hard();  // SIGKILL / TerminateProcess
  long pid() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// A helper process that holds the lock on `path` ("exclusive" or "shared")
// from construction until release() (or destruction, which kills it).
// Throws if it does not take the lock, or does not let go cleanly.
struct holder {
  child_process child;
  holder(const std::filesystem::path& path, const std::string& kind)
      : child(child_process::helper({"hold", path.string(), kind})) {
    if (!child.wait_for_line("locked")) throw std::runtime_error("holder did not lock " + path.string());
  }
  void release() {
    child.close_stdin();
    if (!child.wait_for_line("released")) throw std::runtime_error("holder did not report the release");
    if (child.wait() != std::optional<int>(0)) throw std::runtime_error("holder did not exit cleanly");
  }
};

// The error a call threw: its portable code and message; {} if it did not throw.
struct caught {
  std::errc code{};
  std::string what;
};
template <class F>
caught error_of(F&& f) {
  try {
    f();
  } catch (const std::system_error& e) {
    return {static_cast<std::errc>(e.code().default_error_condition().value()), e.what()};
  }
  return {};
}

// Whole-file reads and writes, byte for byte.
std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& text);

// Exit codes of the helper's one-shot commands.
inline constexpr int helper_acquired = 0;
inline constexpr int helper_busy = 3;
inline constexpr int helper_error = 2;

// Runs the helper to completion and returns its exit code.
int run_helper(const std::vector<std::string>& args, std::chrono::milliseconds timeout = std::chrono::seconds(120));

// Number of open file descriptors (handles on Windows) in this process.
int open_descriptor_count();

// A python3 that can import Debian's `fasteners` module, or "" if none.
std::string python_with_fasteners();
bool python_fasteners_available();

// In a test body: skip without Python fasteners, or fail where the
// environment says it must be there (CI sets FASTENERS_REQUIRE_PYTHON).
#define FASTENERS_REQUIRE_PYTHON_FASTENERS()                                                            \
  do {                                                                                                  \
    if (!::fasteners::test::python_fasteners_available()) {                                             \
      if (std::getenv("FASTENERS_REQUIRE_PYTHON") != nullptr) {                                         \
        FAIL() << "python3-fasteners is required (FASTENERS_REQUIRE_PYTHON is set) but missing";        \
      }                                                                                                 \
      GTEST_SKIP() << "python3 with the fasteners module is not installed (Debian: python3-fasteners)"; \
    }                                                                                                   \
  } while (false)

}  // namespace fasteners::test
