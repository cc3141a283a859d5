// The lock objects on lock files: a path, options and a handle on the
// resource record of the file (resolved on first use), which does all the
// arbitration. See resource_record.hpp.
#include <fasteners/interprocess_lock.hpp>

#include "file_backend.hpp"
#include "lock_file_path.hpp"
#include "resource_record.hpp"

#include <atomic>
#include <system_error>

namespace fasteners::detail {

class interprocess_lock_state {
 public:
  interprocess_lock_state(std::filesystem::path path, interprocess_options options)
      : path_(std::move(path)), options_(options) {}

  ~interprocess_lock_state() {
    resource_record* r = record_.load(std::memory_order_acquire);
    if (r == nullptr) return;
    if (r->generation() != process_generation()) return;  // the parent's: never touched here
    r->forget_object(this);
    record_handle owned(r);  // gives back the reference this object held
  }

  bool acquire(lock_kind kind, deadline until) { return record().acquire(this, kind, until); }

  void release(lock_kind kind) {
    resource_record* r = record_.load(std::memory_order_acquire);
    if (r != nullptr && r->generation() != process_generation()) {
      throw_errc(std::errc::operation_not_permitted, "a lock inherited across fork() stays with the parent:");
    }
    if (r == nullptr) {
      throw_errc(std::errc::operation_not_permitted,
                 kind == lock_kind::shared ? "this thread holds no read lock on" : "this thread does not hold");
    }
    r->release(this, kind);
  }

  void downgrade() {
    resource_record* r = current();
    if (r == nullptr) throw_errc(std::errc::operation_not_permitted, "this thread does not hold the write lock on");
    r->downgrade(this);
  }

  bool holds(lock_kind kind) const noexcept {
    resource_record* r = current();
    try {
      return r != nullptr && r->holds(this, kind);
    } catch (...) {
      return false;
    }
  }

  const std::filesystem::path& path() const noexcept { return path_; }

  std::intptr_t native_handle() const noexcept {
    resource_record* r = current();
    return r != nullptr ? r->backend().native_handle() : -1;
  }

 private:
  // The record, if resolved in this process (not inherited from a parent).
  resource_record* current() const noexcept {
    resource_record* r = record_.load(std::memory_order_acquire);
    return r != nullptr && r->generation() == process_generation() ? r : nullptr;
  }

  // Resolves the record on first use, and again in a fork child. No mutex of
  // the object's own: one that a parent thread held at fork() time would hang
  // the child. Two threads may race to resolve; one reference is kept.
  resource_record& record() {
    resource_record* r = record_.load(std::memory_order_acquire);
    for (;;) {
      if (r != nullptr && r->generation() == process_generation()) return *r;
      record_handle fresh = open_record([this] { return peek_file_key(path_); },
                                        [this](std::string& key) { return open_file_backend(path_, options_, key); });
      if (record_.compare_exchange_strong(r, fresh.get(), std::memory_order_acq_rel)) {
        resource_record* mine = fresh.get();
        fresh.leak();  // the object owns this reference now (an inherited one is left behind)
        return *mine;
      }
      // Another thread resolved first: `r` is its record; ours is dropped.
    }
  }

  [[noreturn]] void throw_errc(std::errc code, const char* what) const {
    throw std::system_error(std::make_error_code(code), describe(what, path_));
  }

  const std::filesystem::path path_;
  const interprocess_options options_;
  std::atomic<resource_record*> record_{nullptr};
};

}  // namespace fasteners::detail

namespace fasteners {

using detail::lock_kind;
using detail::no_deadline;
using detail::one_try;

interprocess_lock::interprocess_lock(std::filesystem::path path, interprocess_options options)
    : state_(std::make_unique<detail::interprocess_lock_state>(std::move(path), options)) {}
interprocess_lock::~interprocess_lock() = default;

void interprocess_lock::lock() { state_->acquire(lock_kind::exclusive, no_deadline); }
bool interprocess_lock::try_lock() { return state_->acquire(lock_kind::exclusive, one_try); }
bool interprocess_lock::try_lock_until_steady(std::chrono::steady_clock::time_point until) {
  return state_->acquire(lock_kind::exclusive, until);
}
void interprocess_lock::unlock() { state_->release(lock_kind::exclusive); }
bool interprocess_lock::owns_lock() const noexcept { return state_->holds(lock_kind::exclusive); }
const std::filesystem::path& interprocess_lock::path() const noexcept { return state_->path(); }
std::intptr_t interprocess_lock::native_handle() const { return state_->native_handle(); }

interprocess_reader_writer_lock::interprocess_reader_writer_lock(std::filesystem::path path,
                                                                 interprocess_options options)
    : state_(std::make_unique<detail::interprocess_lock_state>(std::move(path), options)) {}
interprocess_reader_writer_lock::~interprocess_reader_writer_lock() = default;

void interprocess_reader_writer_lock::lock() { state_->acquire(lock_kind::exclusive, no_deadline); }
bool interprocess_reader_writer_lock::try_lock() { return state_->acquire(lock_kind::exclusive, one_try); }
bool interprocess_reader_writer_lock::try_lock_until_steady(std::chrono::steady_clock::time_point until) {
  return state_->acquire(lock_kind::exclusive, until);
}
void interprocess_reader_writer_lock::unlock() { state_->release(lock_kind::exclusive); }
void interprocess_reader_writer_lock::unlock_and_lock_shared() { state_->downgrade(); }

void interprocess_reader_writer_lock::lock_shared() { state_->acquire(lock_kind::shared, no_deadline); }
bool interprocess_reader_writer_lock::try_lock_shared() { return state_->acquire(lock_kind::shared, one_try); }
bool interprocess_reader_writer_lock::try_lock_shared_until_steady(std::chrono::steady_clock::time_point until) {
  return state_->acquire(lock_kind::shared, until);
}
void interprocess_reader_writer_lock::unlock_shared() { state_->release(lock_kind::shared); }

bool interprocess_reader_writer_lock::is_reader() const noexcept { return state_->holds(lock_kind::shared); }
bool interprocess_reader_writer_lock::is_writer() const noexcept { return state_->holds(lock_kind::exclusive); }
const std::filesystem::path& interprocess_reader_writer_lock::path() const noexcept { return state_->path(); }
std::intptr_t interprocess_reader_writer_lock::native_handle() const { return state_->native_handle(); }

}  // namespace fasteners
