// POSIX back end: one descriptor of the lock file carrying a whole-file
// fcntl record lock, in one of two flavours (posix/fcntl_flavor_*.cpp):
//
// * open-file-description locks (Linux): F_OFD_SETLK(W). They belong to the
//   open file description, so closing some other descriptor of the file does
//   not drop them;
// * classic fcntl locks (everywhere): F_SETLK(W). In SQLite's words they are
//   broken by design: they belong to the process, so two descriptors of one
//   file in one process never conflict, a second lock silently converts the
//   first, and closing *any* descriptor of the file drops every lock the
//   process holds on it.
//
// Either way the resource record above keeps one back end (one descriptor)
// per file per process and arbitrates between threads and objects, so the
// flavours behave alike. What classic locks still cannot fix: an unrelated
// close() of the file elsewhere in the application drops the lock.
//
// Both are whole-file POSIX record locks: they conflict with each other, with
// lockf(3) and with Python fasteners on the same file, both ways.
#include "lock_file_path.hpp"
#include "posix/fcntl_flavor.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace fasteners::detail {

namespace {

short type_of(lock_kind kind) noexcept { return kind == lock_kind::shared ? F_RDLCK : F_WRLCK; }

class fcntl_backend final : public lock_backend {
 public:
  fcntl_backend(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~fcntl_backend() override {
    if (fd_ >= 0) posix::syscall_table().close(fd_);
    for (int spare : spares_) posix::syscall_table().close(spare);
  }

  bool lock(lock_kind kind, deadline until) override {
    const struct flock request = posix::whole_file(type_of(kind));
    const posix::fcntl_flavor& f = posix::flavor();
    int error;
    if (until == no_deadline) {
      error = posix::lock_command(fd_, f.wait_command, request);
      // Classic locks: the kernel's deadlock detection sees processes, not
      // threads, and reports cycles that our threads will undo. Such a wait
      // cannot deadlock on its own (the record has seen to that): wait on.
      if (error == EDEADLK) error = posix::lock_poll(fd_, f.try_command, request, until);
    } else if (until == one_try || until <= std::chrono::steady_clock::now()) {
      error = posix::lock_command(fd_, f.try_command, request);
    } else {
      error = posix::lock_poll(fd_, f.try_command, request, until);
    }
    if (error == 0) return true;
    if (posix::is_busy(error)) return false;
    posix::throw_error(error, "cannot lock", path_);
  }

  void unlock() override {
    const int error = posix::lock_command(fd_, posix::flavor().try_command, posix::whole_file(F_UNLCK));
    if (error != 0) posix::throw_error(error, "cannot unlock", path_);
  }

  // fcntl converts a lock in place, atomically, when the same owner asks for
  // another type on the same range.
  void downgrade() override {
    const int error = posix::lock_command(fd_, posix::flavor().try_command, posix::whole_file(F_RDLCK));
    if (error != 0) posix::throw_error(error, "cannot downgrade the lock on", path_);
  }

  bool waits_until() const noexcept override { return false; }
  std::intptr_t native_handle() const noexcept override { return fd_; }

  // The child's copy of the descriptor goes: with OFD locks it would keep the
  // parent's lock alive after the parent died; closing it never releases
  // anything the parent holds (the parent keeps its own descriptor), and the
  // child holds no classic lock yet (they are not inherited).
  void forget_after_fork() noexcept override {
    if (fd_ >= 0) ::close(fd_);
    for (int spare : spares_) ::close(spare);
    fd_ = -1;
    spares_.clear();
  }

  // Another descriptor of our file, opened in a race. With OFD locks closing
  // it is harmless; with classic locks it would drop ours, so it stays open
  // until this back end closes (one per race, not one per object).
  void absorb_duplicate(lock_backend* other) noexcept override {
    auto* twin = static_cast<fcntl_backend*>(other);
    if (posix::flavor().close_drops_locks && twin->fd_ >= 0) {
      try {
        spares_.push_back(twin->fd_);
        twin->fd_ = -1;
      } catch (...) {
        // No room to keep it: leak it rather than drop our lock.
        twin->fd_ = -1;
      }
    }
    delete twin;
  }

  std::string describe() const override { return "'" + printable_path(path_) + "'"; }

 private:
  const std::filesystem::path path_;
  int fd_;
  std::vector<int> spares_;  // under the record table's mutex (absorb, destruction) or in a fork child
};

}  // namespace

std::string record_key(const file_id& id) {
  std::string key(1 + sizeof id.device + sizeof id.inode, 'f');
  std::memcpy(&key[1], &id.device, sizeof id.device);
  std::memcpy(&key[1 + sizeof id.device], &id.inode, sizeof id.inode);
  return key;
}

std::unique_ptr<lock_backend> open_file_backend(const std::filesystem::path& path, const interprocess_options& options,
                                                std::string& key) {
  file_id id;
  const int fd = posix::open_lock_file(path, options, id);
  try {
    key = record_key(id);
    return std::make_unique<fcntl_backend>(path, fd);
  } catch (...) {
    posix::syscall_table().close(fd);
    throw;
  }
}

std::optional<std::string> peek_file_key(const std::filesystem::path& path) noexcept {
  try {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return record_key(file_id{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)});
  } catch (...) {
    return std::nullopt;
  }
}

const char* file_backend_name() noexcept { return posix::flavor().name; }

}  // namespace fasteners::detail
