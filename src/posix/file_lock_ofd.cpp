// Linux back end: open-file-description locks.
//
// OFD locks belong to the open file description, not to the process, so two
// descriptions of one file conflict even inside one process, closing another
// descriptor of the file does not drop them, and they are still whole-file
// POSIX record locks: they conflict with classic fcntl/lockf locks (Python
// fasteners) on the same file, both ways.
#include "posix/posix_lock_file.hpp"

#include <unistd.h>

#include <cerrno>

namespace fasteners::detail {

class file_lock::impl {
 public:
  impl(const std::filesystem::path& path, const interprocess_options& options)
      : path_(path), fd_(posix::open_lock_file(path, options, id_)) {}
  ~impl() {
    if (fd_ >= 0) posix::syscall_table().close(fd_);
  }

  std::filesystem::path path_;
  file_id id_;
  int fd_;
};

file_lock::file_lock(const std::filesystem::path& path, const interprocess_options& options)
    : impl_(std::make_unique<impl>(path, options)) {}

// Closing never releases here: in a fork child the description is shared with
// the parent and outlives this descriptor.
file_lock::~file_lock() = default;

file_id file_lock::id() const noexcept { return impl_->id_; }

std::intptr_t file_lock::native_handle() const noexcept { return impl_->fd_; }

namespace {
short type_of(lock_kind kind) noexcept { return kind == lock_kind::shared ? F_RDLCK : F_WRLCK; }
}  // namespace

bool file_lock::try_acquire(lock_kind kind) {
  const int error = posix::lock_try(impl_->fd_, F_OFD_SETLK, posix::whole_file(type_of(kind)));
  if (error == 0) return true;
  if (posix::is_busy(error)) return false;
  posix::throw_error(error, "cannot lock", impl_->path_);
}

void file_lock::acquire(lock_kind kind) {
  const int error = posix::lock_wait(impl_->fd_, F_OFD_SETLKW, posix::whole_file(type_of(kind)));
  if (error != 0) posix::throw_error(error, "cannot lock", impl_->path_);
}

bool file_lock::acquire_until(lock_kind kind, deadline until) {
  const int error = posix::lock_until(impl_->fd_, F_OFD_SETLK, F_OFD_SETLKW, posix::whole_file(type_of(kind)), until);
  if (error == 0) return true;
  if (posix::is_busy(error)) return false;
  posix::throw_error(error, "cannot lock", impl_->path_);
}

void file_lock::release() {
  const int error = posix::lock_try(impl_->fd_, F_OFD_SETLK, posix::whole_file(F_UNLCK));
  if (error != 0) posix::throw_error(error, "cannot unlock", impl_->path_);
}

void file_lock::abandon_after_fork() noexcept {}

const char* file_lock::backend_name() noexcept { return "ofd"; }

}  // namespace fasteners::detail
