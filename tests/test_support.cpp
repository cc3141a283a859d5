#include "test_support.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>

#ifdef _WIN32
#error "the Windows half of test_support lives in test_support_windows.cpp"
#else
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace fasteners::test {

namespace {
std::filesystem::path make_unique_dir() {
  const char* base = std::getenv("TMPDIR");
  std::filesystem::path root = base && *base ? base : "/tmp";
  std::random_device rd;
  for (int i = 0; i < 100; ++i) {
    auto candidate = root / ("fasteners-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::error_code ec;
    if (std::filesystem::create_directory(candidate, ec)) return candidate;
  }
  throw std::runtime_error("cannot create a temporary directory");
}
}  // namespace

temp_dir::temp_dir() : path_(make_unique_dir()) {}
temp_dir::~temp_dir() {
  std::error_code ec;
  // A test may have removed permissions from a subdirectory; give them back.
  for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) {
      std::filesystem::permissions(it->path(), std::filesystem::perms::owner_all, std::filesystem::perm_options::add,
                                   ec);
    }
  }
  std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string helper_binary() { return FASTENERS_TEST_HELPER; }

struct child_process::impl {
  pid_t pid = -1;
  int to_child = -1;
  int from_child = -1;
  std::string buffer;
  std::optional<int> status;

  // Reads what is available within `timeout`; false on EOF or timeout.
  bool read_some(std::chrono::steady_clock::time_point until) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() < 0) return false;
      pollfd p{from_child, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      char chunk[4096];
      ssize_t n = ::read(from_child, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buffer.append(chunk, static_cast<size_t>(n));
      return true;
    }
  }
};

child_process::child_process(const std::string& program, const std::vector<std::string>& args)
    : impl_(std::make_unique<impl>()) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::system_category(), "pipe");
  }
  std::vector<std::string> argv_strings{program};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::system_category(), "fork");
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  impl_->pid = pid;
  impl_->to_child = in[1];
  impl_->from_child = out[0];
}

child_process::child_process(child_process&&) noexcept = default;
child_process& child_process::operator=(child_process&&) noexcept = default;

child_process::~child_process() {
  if (!impl_) return;
  if (!impl_->status && impl_->pid > 0) {
    ::kill(impl_->pid, SIGKILL);
    int st;
    ::waitpid(impl_->pid, &st, 0);
  }
  if (impl_->to_child >= 0) ::close(impl_->to_child);
  if (impl_->from_child >= 0) ::close(impl_->from_child);
}

bool child_process::wait_for_line(const std::string& line, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto pos = impl_->buffer.find('\n');
    while (pos != std::string::npos) {
      std::string got = impl_->buffer.substr(0, pos);
      impl_->buffer.erase(0, pos + 1);
      if (got == line) return true;
      pos = impl_->buffer.find('\n');
    }
    if (!impl_->read_some(until)) return false;
  }
}

std::string child_process::read_all(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (impl_->read_some(until)) {
  }
  std::string out;
  out.swap(impl_->buffer);
  return out;
}

void child_process::write_line(const std::string& line) {
  std::string data = line + "\n";
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(impl_->to_child, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::system_error(errno, std::system_category(), "write to child");
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void child_process::close_stdin() {
  if (impl_->to_child >= 0) ::close(impl_->to_child);
  impl_->to_child = -1;
}

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
  if (impl_->status) return impl_->status;
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(impl_->pid, &st, WNOHANG);
    if (r == impl_->pid) {
      impl_->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return impl_->status;
    }
    if (std::chrono::steady_clock::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void child_process::kill_hard() { ::kill(impl_->pid, SIGKILL); }

long child_process::pid() const { return impl_->pid; }

int run_helper(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  auto child = child_process::helper(args);
  child.close_stdin();
  auto code = child.wait(timeout);
  if (!code) throw std::runtime_error("helper did not finish in time");
  return *code;
}

int open_descriptor_count() {
  int count = 0;
  for (auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)entry;
    ++count;
  }
  return count;
}

std::string python_with_fasteners() {
  static const std::string found = [] {
    // Debian's python3-fasteners lives in the system interpreter, which a
    // pyenv or venv python3 earlier on PATH would not see.
    for (const char* candidate : {"/usr/bin/python3", "python3"}) {
      std::string probe = std::string(candidate) + " -c 'import fasteners' >/dev/null 2>&1";
      if (std::system(probe.c_str()) == 0) return std::string(candidate);
    }
    return std::string();
  }();
  return found;
}

bool python_fasteners_available() { return !python_with_fasteners().empty(); }

}  // namespace fasteners::test
