// Opening lock files, errors and the system-call table (POSIX).
#include "posix/posix_lock_file.hpp"

#include "lock_file_path.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace fasteners::detail::posix {

namespace {
int real_open(const char* path, int flags, unsigned mode) { return ::open(path, flags, static_cast<mode_t>(mode)); }
int real_fcntl_lock(int fd, int command, struct flock* request) { return ::fcntl(fd, command, request); }
int real_close(int fd) { return ::close(fd); }
int real_fstat(int fd, struct stat* status) { return ::fstat(fd, status); }
int real_mkdir(const char* path, unsigned mode) { return ::mkdir(path, static_cast<mode_t>(mode)); }
int real_rmdir(const char* path) { return ::rmdir(path); }

std::error_code make_directory(const std::filesystem::path& dir) {
  int result;
  do {
    result = syscall_table().mkdir(dir.c_str(), 0777);
  } while (result != 0 && errno == EINTR);
  return result == 0 ? std::error_code() : std::error_code(errno, std::system_category());
}

// rmdir(2) removes only an empty directory, which is the promise.
void remove_directory_if_empty(const std::filesystem::path& dir) noexcept { syscall_table().rmdir(dir.c_str()); }

const directory_calls table_directory_calls{&make_directory, &remove_directory_if_empty};

// The descriptor, or -errno.
int open_once(const std::filesystem::path& path, int flags, unsigned mode) {
  int fd;
  do {
    fd = syscall_table().open(path.c_str(), flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd < 0 ? -errno : fd;
}

[[noreturn]] void refuse(int error, const std::string& what, const std::filesystem::path& path) {
  throw std::system_error(error, std::system_category(), describe(what, path));
}
}  // namespace

syscalls& syscall_table() noexcept {
  static syscalls table{&real_open, &real_fcntl_lock, &real_close, &real_fstat, &real_mkdir, &real_rmdir};
  return table;
}

void throw_error(int error, const std::string& what, const std::filesystem::path& path) {
  throw std::system_error(error, std::system_category(), describe(what, path));
}

namespace {
// What a non-regular file is, for the message (fasten shows it as it is).
const char* kind_of(mode_t mode) noexcept {
  if (S_ISDIR(mode)) return "lock file is a directory, not a regular file";
  if (S_ISFIFO(mode)) return "lock file is a FIFO, not a regular file";
  if (S_ISSOCK(mode)) return "lock file is a socket, not a regular file";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "lock file is a device, not a regular file";
  return "lock file is not a regular file";
}
}  // namespace

int open_lock_file(const std::filesystem::path& path, const interprocess_options& options, file_id& id) {
  check_lock_file_path(path);
  // O_NOCTTY: a session leader that names a terminal must not get it as its
  // controlling terminal on the way to having it refused.
  const int flags = O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
  const auto mode = static_cast<unsigned>(options.permissions) & 07777u;
  created_directories made(table_directory_calls);
  int fd = open_once(path, flags, mode);
  // Parents are made only when open(2) says one is missing, and only for this
  // attempt. A few rounds, as another process's failed attempt may take away
  // (empty) a directory between our mkdir and our open.
  const bool may_create = options.create_parent_directories && path.has_parent_path();
  for (int round = 0; fd == -ENOENT && may_create && round < 3; ++round) {
    if (const std::error_code ec = made.create(path.parent_path())) {
      refuse(ec.value(), "cannot create the directory of lock file", path);
    }
    fd = open_once(path, flags, mode);
  }
  if (fd < 0) {
    refuse(-fd,
           fd == -ELOOP    ? "lock file is a symbolic link (not followed)"
           : fd == -EISDIR ? "cannot open lock file: it is a directory"
                           : "cannot open lock file",
           path);
  }
  struct stat st {};
  if (syscall_table().fstat(fd, &st) != 0) {
    const int error = errno;
    syscall_table().close(fd);
    refuse(error, "cannot stat lock file", path);
  }
  if (!S_ISREG(st.st_mode)) {
    syscall_table().close(fd);
    refuse(EINVAL, kind_of(st.st_mode), path);
  }
  made.keep();
  id.device = static_cast<std::uint64_t>(st.st_dev);
  id.inode = static_cast<std::uint64_t>(st.st_ino);
  return fd;
}

struct flock whole_file(short type) noexcept {
  struct flock request {};
  request.l_type = type;
  request.l_whence = SEEK_SET;
  request.l_start = 0;
  request.l_len = 0;  // to the end of the file, however long it grows
  request.l_pid = 0;  // required to be 0 for open-file-description locks
  return request;
}

}  // namespace fasteners::detail::posix
