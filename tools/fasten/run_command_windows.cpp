// Starting and waiting for the command on Windows: CreateProcessW.
//
// LockFileEx locks belong to the handle and the process that took them, so a
// command cannot inherit fasten's lock: fasten holds it until the command
// exits, whatever -o says. The lock file's handle is not inheritable anyway.
//
// There are no signals to relay. Ctrl+C and Ctrl+Break reach every process on
// the console, the command included; fasten ignores them while the command
// runs, waits for it and passes its exit status on, as cmd.exe does.
#include "exit_codes.hpp"
#include "run_command.hpp"
#include "windows_command_line.hpp"

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <iostream>
#include <string>
#include <system_error>
#include <vector>

namespace fasten {

namespace {

// shell_command() marks its result with these, so that the text after /c is
// passed to cmd.exe as it is: cmd.exe does not parse its command line the way
// the C runtime does, and with /s it takes everything between the outer quotes
// literally.
const char* const shell_switches[] = {"/d", "/s", "/c"};

std::wstring widen(const std::string& text) {
  if (text.empty()) return std::wstring();
  const int n = ::MultiByteToWideChar(CP_UTF8, 0, text.data(), static_cast<int>(text.size()), nullptr, 0);
  std::wstring wide(static_cast<std::size_t>(n), L'\0');
  ::MultiByteToWideChar(CP_UTF8, 0, text.data(), static_cast<int>(text.size()), wide.data(), n);
  return wide;
}

bool is_shell_command(const std::vector<std::string>& argv) {
  if (argv.size() != 5) return false;
  for (std::size_t k = 0; k < 3; ++k) {
    if (argv[k + 1] != shell_switches[k]) return false;
  }
  return true;
}

std::wstring command_line(const std::vector<std::string>& argv) {
  std::wstring line = quote_argument(widen(argv[0]));
  if (is_shell_command(argv)) return line + L" /d /s /c \"" + widen(argv[4]) + L"\"";
  for (std::size_t k = 1; k < argv.size(); ++k) line += L" " + quote_argument(widen(argv[k]));
  return line;
}

std::string system_message(DWORD error) { return std::system_category().message(static_cast<int>(error)); }

BOOL WINAPI ignore_interrupts(DWORD event) noexcept {
  return event == CTRL_C_EVENT || event == CTRL_BREAK_EVENT ? TRUE : FALSE;
}

// Inheritable copies of our standard handles, for the command and nothing else.
class standard_handles {
 public:
  standard_handles() {
    const DWORD ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
    for (int k = 0; k < 3; ++k) {
      const HANDLE ours = ::GetStdHandle(ids[k]);
      if (ours == nullptr || ours == INVALID_HANDLE_VALUE) continue;
      HANDLE copy = nullptr;
      if (::DuplicateHandle(::GetCurrentProcess(), ours, ::GetCurrentProcess(), &copy, 0, TRUE,
                            DUPLICATE_SAME_ACCESS)) {
        handles_[k] = copy;
      }
    }
  }
  ~standard_handles() {
    for (HANDLE h : handles_) {
      if (h != nullptr) ::CloseHandle(h);
    }
  }
  standard_handles(const standard_handles&) = delete;
  standard_handles& operator=(const standard_handles&) = delete;

  HANDLE operator[](int k) const noexcept { return handles_[k]; }
  // The distinct handles, for PROC_THREAD_ATTRIBUTE_HANDLE_LIST.
  std::vector<HANDLE> list() const {
    std::vector<HANDLE> out;
    for (HANDLE h : handles_) {
      if (h != nullptr) out.push_back(h);
    }
    return out;
  }

 private:
  HANDLE handles_[3] = {nullptr, nullptr, nullptr};
};

}  // namespace

std::vector<std::string> shell_command(const std::string& text) {
  std::string shell = "cmd.exe";
  wchar_t comspec[MAX_PATH + 1];
  const DWORD n = ::GetEnvironmentVariableW(L"ComSpec", comspec, MAX_PATH + 1);
  if (n > 0 && n <= MAX_PATH) {
    const int size = ::WideCharToMultiByte(CP_UTF8, 0, comspec, static_cast<int>(n), nullptr, 0, nullptr, nullptr);
    shell.assign(static_cast<std::size_t>(size), '\0');
    ::WideCharToMultiByte(CP_UTF8, 0, comspec, static_cast<int>(n), shell.data(), size, nullptr, nullptr);
  }
  return {shell, shell_switches[0], shell_switches[1], shell_switches[2], text};
}

bool command_can_inherit_lock() noexcept { return false; }

int run_command(const command_request& request, bool& inherited) {
  inherited = false;
  const std::string& name = request.argv.at(0);
  std::wstring line = command_line(request.argv);

  standard_handles standard;
  std::vector<HANDLE> inherited_handles = standard.list();
  SIZE_T list_size = 0;
  ::InitializeProcThreadAttributeList(nullptr, 1, 0, &list_size);
  std::vector<char> list_storage(list_size);
  auto* attributes = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(list_storage.data());
  const bool have_list =
      !inherited_handles.empty() && ::InitializeProcThreadAttributeList(attributes, 1, 0, &list_size) &&
      ::UpdateProcThreadAttribute(attributes, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherited_handles.data(),
                                  inherited_handles.size() * sizeof(HANDLE), nullptr, nullptr);

  STARTUPINFOEXW startup{};
  startup.StartupInfo.cb = sizeof startup;
  startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  startup.StartupInfo.hStdInput = standard[0];
  startup.StartupInfo.hStdOutput = standard[1];
  startup.StartupInfo.hStdError = standard[2];
  if (have_list) startup.lpAttributeList = attributes;

  // With no application name, CreateProcessW finds argv[0] as a shell would:
  // beside fasten, in the current and system directories, then in PATH, with
  // ".exe" added when the name has no extension.
  ::SetConsoleCtrlHandler(&ignore_interrupts, TRUE);
  PROCESS_INFORMATION started{};
  const BOOL ok =
      ::CreateProcessW(nullptr, line.data(), nullptr, nullptr, !inherited_handles.empty(),
                       have_list ? EXTENDED_STARTUPINFO_PRESENT : 0, nullptr, nullptr, &startup.StartupInfo, &started);
  const DWORD error = ::GetLastError();
  if (have_list) ::DeleteProcThreadAttributeList(attributes);
  if (!ok) {
    ::SetConsoleCtrlHandler(&ignore_interrupts, FALSE);
    if (error == ERROR_FILE_NOT_FOUND || error == ERROR_PATH_NOT_FOUND) {
      if (name.find_first_of("/\\") == std::string::npos) {
        std::cerr << "fasten: " << name << ": command not found\n";
      } else {
        std::cerr << "fasten: " << name << ": " << system_message(error) << "\n";
      }
      return exit_code::command_not_found;
    }
    std::cerr << "fasten: " << name << ": " << system_message(error) << "\n";
    return exit_code::command_not_executable;
  }
  ::CloseHandle(started.hThread);

  DWORD status = 0;
  const bool waited = ::WaitForSingleObject(started.hProcess, INFINITE) == WAIT_OBJECT_0 &&
                      ::GetExitCodeProcess(started.hProcess, &status);
  const DWORD wait_error = ::GetLastError();
  ::CloseHandle(started.hProcess);
  ::SetConsoleCtrlHandler(&ignore_interrupts, FALSE);
  if (!waited) {
    std::cerr << "fasten: waiting for '" << name << "': " << system_message(wait_error) << "\n";
    return exit_code::os_error;
  }
  // Windows exit codes are 32 bits (0xC0000005 for a crash, say); they pass
  // through unchanged.
  return static_cast<int>(status);
}

}  // namespace fasten
