// Opening lock files, errors and the system-call table (POSIX).
#include "posix/posix_lock_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace fasteners::detail::posix {

namespace {
int real_open(const char* path, int flags, unsigned mode) { return ::open(path, flags, static_cast<mode_t>(mode)); }
int real_fcntl_lock(int fd, int command, struct flock* request) { return ::fcntl(fd, command, request); }
int real_close(int fd) { return ::close(fd); }
}  // namespace

syscalls& syscall_table() noexcept {
  static syscalls table{&real_open, &real_fcntl_lock, &real_close};
  return table;
}

void throw_error(int error, const std::string& what, const std::filesystem::path& path) {
  throw std::system_error(error, std::system_category(), "fasteners: " + what + " '" + path.string() + "'");
}

int open_lock_file(const std::filesystem::path& path, const interprocess_options& options, file_id& id) {
  if (path.empty()) throw_error(ENOENT, "empty lock file path", path);
  if (options.create_parent_directories && path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) throw_error(ec.value(), "cannot create the directory of lock file", path);
  }
  const int flags = O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  const auto mode = static_cast<unsigned>(options.permissions) & 07777u;
  int fd;
  do {
    fd = syscall_table().open(path.c_str(), flags, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int error = errno;
    throw_error(error, error == ELOOP ? "lock file is a symbolic link" : "cannot open lock file", path);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    syscall_table().close(fd);
    throw_error(error, "cannot stat lock file", path);
  }
  if (!S_ISREG(st.st_mode)) {
    syscall_table().close(fd);
    throw_error(EINVAL, "lock file is not a regular file", path);
  }
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
