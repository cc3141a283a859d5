// Portable POSIX back end: classic fcntl record locks behind a per-process
// table keyed by device and inode (the way SQLite's os_unix.c does it).
//
// Classic fcntl locks are, in SQLite's words, broken by design: they belong to
// the process, so two descriptors of one file in one process never conflict,
// a second lock silently converts the first, and closing *any* descriptor of
// the file drops every lock the process holds on it. So all objects in this
// process that name one file share one record here: it owns the one
// descriptor that carries the lock, arbitrates between the objects (so they
// exclude each other as separate processes would), and keeps descriptors that
// other objects opened on the same file open until the process holds no lock
// on it. What cannot be fixed: an unrelated close() of the file elsewhere in
// the application still drops the lock.
#include "posix/posix_lock_file.hpp"

#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <map>
#include <mutex>
#include <vector>

namespace fasteners::detail {

namespace {

struct inode_record {
  file_id id;
  int fd = -1;
  unsigned generation = process_generation();
  std::mutex mutex;
  std::condition_variable changed;
  int readers = 0;      // objects holding a shared lock
  bool writer = false;  // an object holds the exclusive lock
  bool busy = false;    // an object is waiting in the kernel, outside `mutex`
  std::vector<int> deferred_close;

  bool locked() const noexcept { return readers > 0 || writer || busy; }
  void close_deferred() noexcept {
    for (int fd_to_close : deferred_close) posix::syscall_table().close(fd_to_close);
    deferred_close.clear();
  }
  ~inode_record() {
    // In a fork child these descriptors are copies of the parent's; closing
    // one could drop locks the child has since taken on the same file through
    // a new record, so the child leaves them open (they close on exec).
    if (generation != process_generation()) return;
    close_deferred();
    if (fd >= 0) posix::syscall_table().close(fd);
  }
};

struct inode_table {
  std::mutex mutex;
  std::map<file_id, std::weak_ptr<inode_record>> records;
};

inode_table& table() {
  static inode_table* const instance = [] {
    auto* created = new inode_table;  // never destroyed: used by destructors of static locks
    ::pthread_atfork([] { table().mutex.lock(); }, [] { table().mutex.unlock(); },
                     [] {
                       table().mutex.unlock();
                       table().records.clear();  // the child holds none of the parent's locks
                     });
    return created;
  }();
  return *instance;
}

std::shared_ptr<inode_record> record_for(int fd, const file_id& id) {
  inode_table& t = table();
  std::lock_guard<std::mutex> guard(t.mutex);
  auto found = t.records.find(id);
  if (found != t.records.end()) {
    if (auto existing = found->second.lock()) {
      std::lock_guard<std::mutex> record_guard(existing->mutex);
      if (existing->locked()) {
        existing->deferred_close.push_back(fd);  // closing it now would drop our locks
      } else {
        posix::syscall_table().close(fd);
      }
      return existing;
    }
  }
  for (auto it = t.records.begin(); it != t.records.end();) {
    it = it->second.expired() ? t.records.erase(it) : std::next(it);
  }
  auto created = std::make_shared<inode_record>();
  created->id = id;
  created->fd = fd;
  t.records[id] = created;
  return created;
}

short type_of(lock_kind kind) noexcept { return kind == lock_kind::shared ? F_RDLCK : F_WRLCK; }

enum class wait_mode { try_once, until_deadline, forever };

}  // namespace

class file_lock::impl {
 public:
  impl(const std::filesystem::path& path, const interprocess_options& options) : path_(path) {
    file_id id;
    const int fd = posix::open_lock_file(path, options, id);
    try {
      record_ = record_for(fd, id);
    } catch (...) {
      posix::syscall_table().close(fd);
      throw;
    }
  }

  bool acquire(lock_kind kind, wait_mode mode, deadline until) {
    inode_record& rec = *record_;
    std::unique_lock<std::mutex> guard(rec.mutex);
    auto ready = [&] { return !rec.busy && !rec.writer && (kind == lock_kind::shared || rec.readers == 0); };
    switch (mode) {
      case wait_mode::try_once:
        if (!ready()) return false;
        break;
      case wait_mode::forever:
        rec.changed.wait(guard, ready);
        break;
      case wait_mode::until_deadline:
        if (!rec.changed.wait_until(guard, until, ready)) return false;
        break;
    }
    if (kind == lock_kind::shared && rec.readers > 0) {  // the process already holds F_RDLCK
      ++rec.readers;
      held_ = kind;
      return true;
    }
    int error;
    const auto request = posix::whole_file(type_of(kind));
    if (mode == wait_mode::try_once) {
      error = posix::lock_try(rec.fd, F_SETLK, request);
    } else {
      rec.busy = true;
      guard.unlock();
      error = mode == wait_mode::forever ? posix::lock_wait(rec.fd, F_SETLKW, request)
                                         : posix::lock_until(rec.fd, F_SETLK, F_SETLKW, request, until);
      guard.lock();
      rec.busy = false;
    }
    if (error == 0) {
      if (kind == lock_kind::shared) {
        rec.readers = 1;
      } else {
        rec.writer = true;
      }
      held_ = kind;
    } else if (!rec.locked()) {
      rec.close_deferred();
    }
    rec.changed.notify_all();
    if (error == 0) return true;
    if (posix::is_busy(error)) return false;
    guard.unlock();
    posix::throw_error(error, "cannot lock", path_);
  }

  void release() {
    inode_record& rec = *record_;
    std::lock_guard<std::mutex> guard(rec.mutex);
    int error = 0;
    if (held_ == lock_kind::shared) {
      if (--rec.readers == 0) error = posix::lock_try(rec.fd, F_SETLK, posix::whole_file(F_UNLCK));
    } else {
      rec.writer = false;
      error = posix::lock_try(rec.fd, F_SETLK, posix::whole_file(F_UNLCK));
    }
    if (!rec.locked()) rec.close_deferred();
    rec.changed.notify_all();
    if (error != 0) posix::throw_error(error, "cannot unlock", path_);
  }

  std::filesystem::path path_;
  std::shared_ptr<inode_record> record_;
  lock_kind held_ = lock_kind::shared;
};

file_lock::file_lock(const std::filesystem::path& path, const interprocess_options& options)
    : impl_(std::make_unique<impl>(path, options)) {}

file_lock::~file_lock() = default;

file_id file_lock::id() const noexcept { return impl_->record_->id; }

std::intptr_t file_lock::native_handle() const noexcept { return impl_->record_->fd; }

bool file_lock::try_acquire(lock_kind kind) { return impl_->acquire(kind, wait_mode::try_once, deadline{}); }

void file_lock::acquire(lock_kind kind) { impl_->acquire(kind, wait_mode::forever, deadline::max()); }

bool file_lock::acquire_until(lock_kind kind, deadline until) {
  if (until == deadline::max()) return impl_->acquire(kind, wait_mode::forever, until);
  if (std::chrono::steady_clock::now() >= until) return impl_->acquire(kind, wait_mode::try_once, until);
  return impl_->acquire(kind, wait_mode::until_deadline, until);
}

void file_lock::release() { impl_->release(); }

// The parent's record (and its mutex, which another parent thread may have
// held at fork time) is never touched again; the child's table starts empty.
void file_lock::abandon_after_fork() noexcept {}

const char* file_lock::backend_name() noexcept { return "classic-fcntl"; }

}  // namespace fasteners::detail
