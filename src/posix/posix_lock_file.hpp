// POSIX helpers shared by the two fcntl back ends.
#pragma once

#include "file_lock.hpp"

#include <fcntl.h>

#include <filesystem>
#include <string>

namespace fasteners::detail::posix {

// System calls go through this table so that tests can inject failures
// (EINTR, ENOLCK, EIO) the way SQLite's os_unix.c does.
struct syscalls {
  int (*open)(const char* path, int flags, unsigned mode);
  int (*fcntl_lock)(int fd, int command, struct flock* request);
  int (*close)(int fd);
};
syscalls& syscall_table() noexcept;

[[noreturn]] void throw_error(int error, const std::string& what, const std::filesystem::path& path);

// True for the errors that mean "somebody else holds it".
inline bool is_busy(int error) noexcept { return error == EAGAIN || error == EACCES || error == EWOULDBLOCK; }

// Opens the lock file as DESIGN.md says: O_RDWR|O_CREAT|O_CLOEXEC|O_NOFOLLOW|
// O_NONBLOCK, regular files only, parents created, never truncated.
int open_lock_file(const std::filesystem::path& path, const interprocess_options& options, file_id& id);

// Whole-file record lock request.
struct flock whole_file(short type) noexcept;

// fcntl lock commands with the semantics the layer above needs; each returns
// 0 on success or an errno value, never throws.
int lock_try(int fd, int try_command, struct flock request) noexcept;
int lock_wait(int fd, int wait_command, struct flock request) noexcept;
// Waits (in the kernel where the platform allows it) until `until`, with a
// last try at the deadline; a deadline already past is a single try. Callers
// have usually just tried, so it does not try first. Returns 0, a busy errno,
// or another errno.
int lock_until(int fd, int try_command, int wait_command, struct flock request, deadline until) noexcept;

}  // namespace fasteners::detail::posix
