// POSIX helpers shared by the two fcntl back ends.
#pragma once

#include "file_backend.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

namespace fasteners::detail::posix {

// System calls go through this table so that tests can inject failures
// (EINTR, ENOLCK, EIO) the way SQLite's os_unix.c does.
struct syscalls {
  int (*open)(const char* path, int flags, unsigned mode);
  int (*fcntl_lock)(int fd, int command, struct flock* request);
  int (*close)(int fd);
  // Opening a lock file (open_lock_file) makes these calls too.
  int (*fstat)(int fd, struct stat* status);
  int (*mkdir)(const char* path, unsigned mode);
  int (*rmdir)(const char* path);
};
syscalls& syscall_table() noexcept;

[[noreturn]] void throw_error(int error, const std::string& what, const std::filesystem::path& path);

// True for the errors that mean "somebody else holds it".
inline bool is_busy(int error) noexcept { return error == EAGAIN || error == EACCES || error == EWOULDBLOCK; }

// Opens the lock file as DESIGN.md says: O_RDWR|O_CREAT|O_CLOEXEC|O_NOFOLLOW|
// O_NONBLOCK, plus O_NOCTTY; regular files only, never truncated; missing
// parents created, and removed again if the attempt then fails. The path is
// checked first (lock_file_path.hpp): an embedded NUL, or a name that can only
// be a directory ("dir/"), is refused before anything is created.
int open_lock_file(const std::filesystem::path& path, const interprocess_options& options, file_id& id);

// Whole-file record lock request.
struct flock whole_file(short type) noexcept;

// One fcntl lock command, EINTR retried. 0 on success or an errno value.
// Not noexcept: F_SETLKW is a cancellation point, and pthread_cancel unwinds
// through here (the kernel then granted nothing).
int lock_command(int fd, int command, struct flock request);
// Tries until `until` with a back-off capped at one millisecond: for where
// the kernel cannot wait for us (no helper thread to be had, or classic
// locks' EDEADLK, which sees processes where our waits are threads'). A
// deadline of no_deadline polls for ever.
int lock_poll(int fd, int try_command, struct flock request, deadline until);

}  // namespace fasteners::detail::posix
