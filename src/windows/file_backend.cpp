// Windows back end: LockFileEx on byte 0, length 1 (the range Python
// fasteners' Windows reader-writer lock uses).
//
// Byte-range locks belong to the file handle, so two handles on one file
// conflict even inside one process, and closing another handle of the file
// does not drop them; the OS releases them when the handle is closed or the
// process dies. A handle that takes a second shared lock on the same range
// stacks it; the record above never does that (it calls us only when it holds
// nothing, and releases once). A shared lock stacked on our own exclusive one
// is what makes the downgrade atomic.
//
// Windows locks are mandatory, not advisory: while the lock is held, other
// handles cannot read or write byte 0 of the lock file (ERROR_LOCK_VIOLATION).
// We never touch the content; programs that keep data in a lock file should
// not expect to read it while someone else holds the lock.
//
// Blocking and timed waits are overlapped LockFileEx requests, each with its
// own event and OVERLAPPED, so a waiter sleeps in the kernel and wakes as the
// holder lets go. A timed wait that runs out cancels its request and waits for
// the cancellation to finish before its OVERLAPPED goes away.
//
// Wine (8.0 at least) does not implement asynchronous lock waits: NtLockFile
// answers ERROR_IO_PENDING and never completes the request ("Async I/O lock
// wait not implemented, might deadlock"). Under Wine we therefore poll with
// LOCKFILE_FAIL_IMMEDIATELY and a back-off capped at one millisecond, as the
// POSIX back end does where it cannot wait in the kernel.
#include "windows/owned_handle.hpp"
#include "windows/windows_lock_file.hpp"

#include "file_backend.hpp"
#include "lock_file_path.hpp"

#include <algorithm>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace fasteners::detail {

namespace windows {

namespace {
bool running_under_wine() noexcept {
  const HMODULE ntdll = ::GetModuleHandleW(L"ntdll.dll");
  return ntdll != nullptr && ::GetProcAddress(ntdll, "wine_get_version") != nullptr;
}
}  // namespace

syscalls& syscall_table() noexcept {
  static syscalls table{&::LockFileEx, &::UnlockFileEx, &::CancelIoEx, &::GetOverlappedResult, !running_under_wine()};
  return table;
}

}  // namespace windows

namespace {

using windows::syscall_table;

using std::chrono::steady_clock;

[[noreturn]] void throw_error(DWORD error, const std::string& what, const std::filesystem::path& path) {
  throw std::system_error(static_cast<int>(error), std::system_category(),
                          "fasteners: " + what + " '" + path.string() + "'");
}

// For the cases Windows has no error code of its own for, the portable code
// POSIX users see too.
[[noreturn]] void throw_errc(std::errc code, const std::string& what, const std::filesystem::path& path) {
  throw std::system_error(std::make_error_code(code), "fasteners: " + what + " '" + path.string() + "'");
}

using windows::owned_handle;

DWORD flags_of(lock_kind kind) noexcept { return kind == lock_kind::exclusive ? LOCKFILE_EXCLUSIVE_LOCK : 0; }

// Milliseconds to wait for `until`, rounded up so that we never wake early
// because of rounding, and short of INFINITE.
DWORD milliseconds_until(deadline until) noexcept {
  const auto now = steady_clock::now();
  if (until <= now) return 0;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
  return static_cast<DWORD>(std::min<long long>(left, INFINITE - 1));
}

// One LockFileEx request on byte 0. With `until` it waits at most that long,
// without it forever (unless `flags` says LOCKFILE_FAIL_IMMEDIATELY). Returns
// ERROR_SUCCESS, ERROR_LOCK_VIOLATION when busy or timed out, or another error.
// Never returns while the kernel may still write to the OVERLAPPED.
DWORD request_lock(HANDLE file, DWORD flags, const deadline* until) noexcept {
  owned_handle event(::CreateEventW(nullptr, TRUE, FALSE, nullptr));
  if (event.get() == nullptr) return ::GetLastError();
  OVERLAPPED request{};  // Offset 0: byte 0
  request.hEvent = event.get();
  if (syscall_table().lock_file_ex(file, flags, 0, 1, 0, &request)) return ERROR_SUCCESS;
  DWORD error = ::GetLastError();
  if (error != ERROR_IO_PENDING) return error;

  DWORD transferred = 0;
  for (;;) {
    const DWORD waited = ::WaitForSingleObject(event.get(), until ? milliseconds_until(*until) : INFINITE);
    if (waited == WAIT_OBJECT_0) break;
    if (waited == WAIT_TIMEOUT && until && steady_clock::now() < *until) continue;  // woke early
    // Out of time (or the wait failed): withdraw the request, then wait for
    // the kernel to finish with it. ERROR_NOT_FOUND from CancelIoEx means it
    // completed meanwhile.
    const DWORD wait_error = waited == WAIT_FAILED ? ::GetLastError() : ERROR_SUCCESS;
    syscall_table().cancel_io_ex(file, &request);
    if (syscall_table().get_overlapped_result(file, &request, &transferred, TRUE)) {
      return ERROR_SUCCESS;  // granted in the race: ours
    }
    error = ::GetLastError();
    if (error != ERROR_OPERATION_ABORTED) return error;
    return wait_error != ERROR_SUCCESS ? wait_error : ERROR_LOCK_VIOLATION;
  }
  if (syscall_table().get_overlapped_result(file, &request, &transferred, FALSE)) return ERROR_SUCCESS;
  return ::GetLastError();
}

// The Wine fallback: tries with a back-off capped at one millisecond.
DWORD poll_lock(HANDLE file, DWORD flags, const deadline* until) noexcept {
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    const DWORD error = request_lock(file, flags | LOCKFILE_FAIL_IMMEDIATELY, nullptr);
    if (error != ERROR_LOCK_VIOLATION) return error;
    auto sleep = pause;
    if (until) {
      const auto now = steady_clock::now();
      if (now >= *until) return error;
      sleep = std::min(
          pause, std::chrono::duration_cast<std::chrono::microseconds>(*until - now) + std::chrono::microseconds(1));
    }
    std::this_thread::sleep_for(sleep);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

DWORD wait_for_lock(HANDLE file, DWORD flags, const deadline* until) noexcept {
  return syscall_table().async_lock_waits ? request_lock(file, flags, until) : poll_lock(file, flags, until);
}

// Opens the lock file: created if missing, never truncated or written, not
// inherited by child processes, and shared with every other opener. The
// final component is not followed if it is a symbolic link or junction.
HANDLE open_lock_file(const std::filesystem::path& path, const interprocess_options& options, file_id& id) {
  check_lock_file_path(path);
  // Declared before the handle, so that on an error the handle closes first
  // and then the directories this attempt made go (lock_file_path.hpp).
  created_directories made(filesystem_directory_calls());
  // options.permissions has no Windows counterpart: a new file gets the ACL
  // it inherits from its directory.
  auto open = [&] {
    return ::CreateFileW(path.c_str(), GENERIC_READ | GENERIC_WRITE,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr, OPEN_ALWAYS,
                         FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OVERLAPPED | FILE_FLAG_OPEN_REPARSE_POINT, nullptr);
  };
  owned_handle file(open());
  for (int round = 0; round < 3 && file.get() == INVALID_HANDLE_VALUE && ::GetLastError() == ERROR_PATH_NOT_FOUND &&
                      options.create_parent_directories && path.has_parent_path();
       ++round) {
    if (const std::error_code ec = made.create(path.parent_path())) {
      throw std::system_error(ec, describe("cannot create the directory of lock file", path));
    }
    file.reset(open());
  }
  if (file.get() == INVALID_HANDLE_VALUE) {
    const DWORD error = ::GetLastError();
    if (error == ERROR_ACCESS_DENIED) {  // what opening a directory as a file gives
      const DWORD attributes = ::GetFileAttributesW(path.c_str());
      if (attributes != INVALID_FILE_ATTRIBUTES && (attributes & FILE_ATTRIBUTE_DIRECTORY) != 0) {
        throw_errc(std::errc::is_a_directory, "lock file is a directory", path);
      }
    }
    throw_error(error, "cannot open lock file", path);
  }
  const DWORD type = ::GetFileType(file.get());
  if (type != FILE_TYPE_DISK) {
    const DWORD error = ::GetLastError();
    if (type == FILE_TYPE_UNKNOWN && error != NO_ERROR) throw_error(error, "cannot stat lock file", path);
    throw_errc(std::errc::invalid_argument, "lock file is not a regular file", path);
  }
  FILE_ATTRIBUTE_TAG_INFO tag{};
  if (!::GetFileInformationByHandleEx(file.get(), FileAttributeTagInfo, &tag, sizeof tag)) {
    throw_error(::GetLastError(), "cannot stat lock file", path);
  }
  // Symbolic links and junctions are name surrogates; other reparse points
  // (cloud placeholders, deduplicated files) are ordinary files to us.
  if ((tag.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) != 0 && IsReparseTagNameSurrogate(tag.ReparseTag)) {
    throw_errc(std::errc::too_many_symbolic_link_levels, "lock file is a symbolic link", path);
  }
  if ((tag.FileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0) {
    throw_errc(std::errc::is_a_directory, "lock file is a directory", path);
  }
  BY_HANDLE_FILE_INFORMATION info{};
  if (!::GetFileInformationByHandle(file.get(), &info)) throw_error(::GetLastError(), "cannot stat lock file", path);
  id.device = info.dwVolumeSerialNumber;
  id.inode = (static_cast<std::uint64_t>(info.nFileIndexHigh) << 32) | info.nFileIndexLow;
  made.keep();
  return file.release();
}

class windows_backend final : public lock_backend {
 public:
  windows_backend(std::filesystem::path path, HANDLE handle) : path_(std::move(path)), handle_(handle) {}
  ~windows_backend() override { ::CloseHandle(handle_); }

  bool lock(lock_kind kind, deadline until) override {
    DWORD error;
    if (until == no_deadline) {
      error = wait_for_lock(handle_, flags_of(kind), nullptr);
    } else if (until == one_try || steady_clock::now() >= until) {
      // LOCKFILE_FAIL_IMMEDIATELY may still answer ERROR_IO_PENDING on an
      // overlapped handle; request_lock then waits for the (prompt) answer.
      error = request_lock(handle_, flags_of(kind) | LOCKFILE_FAIL_IMMEDIATELY, nullptr);
    } else {
      error = wait_for_lock(handle_, flags_of(kind), &until);
    }
    if (error == ERROR_SUCCESS) return true;
    if (error == ERROR_LOCK_VIOLATION) return false;
    throw_error(error, "cannot lock", path_);
  }

  void unlock() override {
    OVERLAPPED range{};  // byte 0; unlocking completes at once
    if (!syscall_table().unlock_file_ex(handle_, 0, 1, 0, &range)) {
      throw_error(::GetLastError(), "cannot unlock", path_);
    }
  }

  // "A shared lock can overlap an exclusive lock if both locks were created
  // using the same file handle", and the first unlock of such a range removes
  // the exclusive lock: so stack a shared lock, then unlock once. No other
  // handle can get in between.
  void downgrade() override {
    const DWORD error = request_lock(handle_, LOCKFILE_FAIL_IMMEDIATELY, nullptr);
    if (error != ERROR_SUCCESS) throw_error(error, "cannot downgrade the lock on", path_);
    unlock();
  }

  bool waits_until() const noexcept override { return true; }
  std::intptr_t native_handle() const noexcept override { return reinterpret_cast<std::intptr_t>(handle_); }
  std::string describe() const override { return "'" + printable_path(path_) + "'"; }

 private:
  const std::filesystem::path path_;
  HANDLE handle_;
};

}  // namespace

std::string record_key(const file_id& id) { return "f" + std::to_string(id.device) + ":" + std::to_string(id.inode); }

std::unique_ptr<lock_backend> open_file_backend(const std::filesystem::path& path, const interprocess_options& options,
                                                std::string& key) {
  file_id id;
  owned_handle handle(open_lock_file(path, options, id));
  key = record_key(id);
  auto backend = std::make_unique<windows_backend>(path, handle.get());
  handle.release();
  return backend;
}

// Windows names a file's identity only through an open handle.
std::optional<std::string> peek_file_key(const std::filesystem::path&) noexcept { return std::nullopt; }

const char* file_backend_name() noexcept { return "LockFileEx"; }

}  // namespace fasteners::detail
