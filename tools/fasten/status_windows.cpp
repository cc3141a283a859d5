// A lock file's state on Windows.
//
// Windows has no F_GETLK: the only way to learn whether byte 0 is locked is
// to try. The probe opens the file read-only (never creating it), tries an
// exclusive and then a shared LockFileEx with LOCKFILE_FAIL_IMMEDIATELY, and
// lets go at once of what it got; somebody else's try in that instant may
// find the lock busy. Nor can Windows say which processes hold a byte-range
// lock, so the holders stay unknown.
#include "lock_status.hpp"
#include "windows/owned_handle.hpp"

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <system_error>

namespace fasten {

namespace {

[[noreturn]] void throw_error(DWORD error, const std::filesystem::path& path) {
  throw std::system_error(static_cast<int>(error), std::system_category(), path.string());
}

[[noreturn]] void throw_errc(std::errc code, const std::filesystem::path& path) {
  throw std::system_error(std::make_error_code(code), path.string());
}

using file_handle = fasteners::detail::windows::owned_handle;

// One immediate attempt, released at once if it succeeded. True if granted.
bool could_lock(HANDLE file, DWORD flags, const std::filesystem::path& path) {
  OVERLAPPED at_zero{};
  if (::LockFileEx(file, flags | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &at_zero)) {
    OVERLAPPED unlock_at_zero{};
    ::UnlockFileEx(file, 0, 1, 0, &unlock_at_zero);
    return true;
  }
  const DWORD error = ::GetLastError();
  if (error == ERROR_LOCK_VIOLATION) return false;
  throw_error(error, path);
}

}  // namespace

lock_status query_lock_status(const std::filesystem::path& path) {
  lock_status status;
  // Synchronous (not overlapped): an immediate LockFileEx then answers at once.
  file_handle file(::CreateFileW(path.c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                                 nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT,
                                 nullptr));
  if (file.get() == INVALID_HANDLE_VALUE) {
    const DWORD error = ::GetLastError();
    if (error == ERROR_FILE_NOT_FOUND) return status;  // lock_state::missing
    if (error == ERROR_ACCESS_DENIED) {
      const DWORD attributes = ::GetFileAttributesW(path.c_str());
      if (attributes != INVALID_FILE_ATTRIBUTES && (attributes & FILE_ATTRIBUTE_DIRECTORY) != 0) {
        throw_errc(std::errc::is_a_directory, path);
      }
    }
    throw_error(error, path);
  }
  if (::GetFileType(file.get()) != FILE_TYPE_DISK) throw_errc(std::errc::invalid_argument, path);
  FILE_ATTRIBUTE_TAG_INFO tag{};
  if (!::GetFileInformationByHandleEx(file.get(), FileAttributeTagInfo, &tag, sizeof tag)) {
    throw_error(::GetLastError(), path);
  }
  if ((tag.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) != 0 && IsReparseTagNameSurrogate(tag.ReparseTag)) {
    throw_errc(std::errc::too_many_symbolic_link_levels, path);
  }
  if ((tag.FileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0) throw_errc(std::errc::is_a_directory, path);

  if (could_lock(file.get(), LOCKFILE_EXCLUSIVE_LOCK, path)) {
    status.state = lock_state::free;
  } else if (could_lock(file.get(), 0, path)) {
    status.state = lock_state::shared;
  } else {
    status.state = lock_state::exclusive;
  }
  return status;
}

}  // namespace fasten
