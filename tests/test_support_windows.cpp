// The Windows half of test_support: temporary directories and helper
// processes started with CreateProcessW.
#include "test_support.hpp"

#include "windows_command_line.hpp"

#ifndef _WIN32
#error "the POSIX half of test_support lives in test_support.cpp"
#endif

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace fasteners::test {

namespace {

[[noreturn]] void throw_last_error(const char* what) {
  throw std::system_error(static_cast<int>(::GetLastError()), std::system_category(), what);
}

// Narrow strings are UTF-8 here, as std::filesystem::path treats them with libstdc++.
std::wstring widen(const std::string& s) { return std::filesystem::path(s).native(); }

using fasten::quote_argument;

std::filesystem::path make_unique_dir() {
  wchar_t buffer[MAX_PATH + 1];
  const DWORD n = ::GetTempPathW(MAX_PATH + 1, buffer);
  if (n == 0 || n > MAX_PATH) throw_last_error("GetTempPathW");
  const std::filesystem::path root(std::wstring(buffer, n));
  std::random_device rd;
  for (int i = 0; i < 100; ++i) {
    auto candidate = root / ("fasteners-test-" + std::to_string(::GetCurrentProcessId()) + "-" + std::to_string(rd()));
    std::error_code ec;
    if (std::filesystem::create_directory(candidate, ec)) return candidate;
  }
  throw std::runtime_error("cannot create a temporary directory");
}

void close_handle(HANDLE& h) noexcept {
  if (h != nullptr && h != INVALID_HANDLE_VALUE) ::CloseHandle(h);
  h = nullptr;
}

}  // namespace

temp_dir::temp_dir() : path_(make_unique_dir()) {}
temp_dir::~temp_dir() {
  std::error_code ec;
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

std::string helper_binary() {
  // The build tree's path, as CMake wrote it; else the helper beside us.
  std::error_code ec;
  if (std::filesystem::exists(FASTENERS_TEST_HELPER, ec)) return FASTENERS_TEST_HELPER;
  wchar_t self[32768];
  const DWORD n = ::GetModuleFileNameW(nullptr, self, 32768);
  if (n == 0 || n >= 32768) throw_last_error("GetModuleFileNameW");
  const auto beside = std::filesystem::path(std::wstring(self, n)).parent_path() / "fasteners_test_helper.exe";
  return beside.string();
}

struct child_process::impl {
  HANDLE process = nullptr;
  HANDLE to_child = nullptr;
  HANDLE from_child = nullptr;
  DWORD pid = 0;
  std::string buffer;
  std::optional<int> status;

  ~impl() {
    if (process != nullptr && !status) {
      ::TerminateProcess(process, 128 + 9);
      ::WaitForSingleObject(process, INFINITE);
    }
    close_handle(process);
    close_handle(to_child);
    close_handle(from_child);
  }

  // Reads what is available before `until`; false on EOF or timeout.
  // Anonymous pipes cannot be waited on, so this polls, sleeping a
  // millisecond between looks.
  bool read_some(std::chrono::steady_clock::time_point until) {
    for (;;) {
      DWORD available = 0;
      if (!::PeekNamedPipe(from_child, nullptr, 0, nullptr, &available, nullptr)) return false;  // EOF
      if (available > 0) {
        char chunk[4096];
        DWORD n = 0;
        if (!::ReadFile(from_child, chunk, std::min<DWORD>(available, sizeof chunk), &n, nullptr) || n == 0) {
          return false;
        }
        buffer.append(chunk, n);
        return true;
      }
      if (std::chrono::steady_clock::now() >= until) return false;
      ::Sleep(1);
    }
  }
};

child_process::child_process(const std::string& program, const std::vector<std::string>& args)
    : impl_(std::make_unique<impl>()) {
  SECURITY_ATTRIBUTES inheritable{};
  inheritable.nLength = sizeof inheritable;
  inheritable.bInheritHandle = TRUE;
  HANDLE child_stdin = nullptr, child_stdout = nullptr, child_stderr = nullptr;
  if (!::CreatePipe(&child_stdin, &impl_->to_child, &inheritable, 0)) throw_last_error("CreatePipe");
  if (!::CreatePipe(&impl_->from_child, &child_stdout, &inheritable, 0)) {
    close_handle(child_stdin);
    throw_last_error("CreatePipe");
  }
  ::SetHandleInformation(impl_->to_child, HANDLE_FLAG_INHERIT, 0);
  ::SetHandleInformation(impl_->from_child, HANDLE_FLAG_INHERIT, 0);
  // The child writes its errors where ours go.
  const HANDLE our_stderr = ::GetStdHandle(STD_ERROR_HANDLE);
  if (our_stderr == nullptr || our_stderr == INVALID_HANDLE_VALUE ||
      !::DuplicateHandle(::GetCurrentProcess(), our_stderr, ::GetCurrentProcess(), &child_stderr, 0, TRUE,
                         DUPLICATE_SAME_ACCESS)) {
    child_stderr = nullptr;
  }

  // Only these handles go to the child, so that children started at the same
  // time by other threads do not keep each other's pipes open.
  HANDLE inherited[3] = {child_stdin, child_stdout, child_stderr};
  const DWORD inherited_count = child_stderr != nullptr ? 3 : 2;
  SIZE_T list_size = 0;
  ::InitializeProcThreadAttributeList(nullptr, 1, 0, &list_size);
  std::vector<char> list_storage(list_size);
  auto* attributes = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(list_storage.data());
  const bool have_list = ::InitializeProcThreadAttributeList(attributes, 1, 0, &list_size) &&
                         ::UpdateProcThreadAttribute(attributes, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherited,
                                                     inherited_count * sizeof(HANDLE), nullptr, nullptr);

  STARTUPINFOEXW startup{};
  startup.StartupInfo.cb = sizeof startup;
  startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  startup.StartupInfo.hStdInput = child_stdin;
  startup.StartupInfo.hStdOutput = child_stdout;
  startup.StartupInfo.hStdError = child_stderr;
  if (have_list) startup.lpAttributeList = attributes;

  const std::wstring application = widen(program);
  std::wstring command_line = quote_argument(application);
  for (const auto& arg : args) command_line += L" " + quote_argument(widen(arg));
  PROCESS_INFORMATION started{};
  const BOOL ok =
      ::CreateProcessW(application.c_str(), command_line.data(), nullptr, nullptr, TRUE,
                       have_list ? EXTENDED_STARTUPINFO_PRESENT : 0, nullptr, nullptr, &startup.StartupInfo, &started);
  const DWORD error = ::GetLastError();
  if (have_list) ::DeleteProcThreadAttributeList(attributes);
  close_handle(child_stdin);
  close_handle(child_stdout);
  close_handle(child_stderr);
  if (!ok) {
    throw std::system_error(static_cast<int>(error), std::system_category(), "CreateProcessW " + program);
  }
  ::CloseHandle(started.hThread);
  impl_->process = started.hProcess;
  impl_->pid = started.dwProcessId;
}

child_process::child_process(child_process&&) noexcept = default;
child_process& child_process::operator=(child_process&&) noexcept = default;
child_process::~child_process() = default;

bool child_process::wait_for_line(const std::string& line, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto pos = impl_->buffer.find('\n');
    while (pos != std::string::npos) {
      std::string got = impl_->buffer.substr(0, pos);
      impl_->buffer.erase(0, pos + 1);
      if (!got.empty() && got.back() == '\r') got.pop_back();
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
  const std::string data = line + "\n";
  const char* p = data.data();
  DWORD left = static_cast<DWORD>(data.size());
  while (left > 0) {
    DWORD n = 0;
    if (!::WriteFile(impl_->to_child, p, left, &n, nullptr) || n == 0) throw_last_error("write to child");
    p += n;
    left -= n;
  }
}

void child_process::close_stdin() { close_handle(impl_->to_child); }

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
  if (impl_->status) return impl_->status;
  const auto ms = std::clamp<long long>(timeout.count(), 0, INFINITE - 1);
  if (::WaitForSingleObject(impl_->process, static_cast<DWORD>(ms)) != WAIT_OBJECT_0) return std::nullopt;
  DWORD code = 0;
  if (!::GetExitCodeProcess(impl_->process, &code)) throw_last_error("GetExitCodeProcess");
  impl_->status = static_cast<int>(code);
  return impl_->status;
}

// Exit code 137 (128 + SIGKILL), so that wait() reads as it does on POSIX.
void child_process::kill_hard() { ::TerminateProcess(impl_->process, 128 + 9); }

long child_process::pid() const { return static_cast<long>(impl_->pid); }

int run_helper(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  auto child = child_process::helper(args);
  child.close_stdin();
  auto code = child.wait(timeout);
  if (!code) throw std::runtime_error("helper did not finish in time");
  return *code;
}

int open_descriptor_count() {
  DWORD count = 0;
  if (!::GetProcessHandleCount(::GetCurrentProcess(), &count)) throw_last_error("GetProcessHandleCount");
  return static_cast<int>(count);
}

// There is no python3 with fasteners under Wine; the tests that need one skip.
std::string python_with_fasteners() { return std::string(); }

bool python_fasteners_available() { return false; }

}  // namespace fasteners::test
