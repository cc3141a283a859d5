// The thread-safe layer over file_lock: one object shared by threads behaves
// like std::timed_mutex / std::shared_timed_mutex, self-deadlock is reported
// instead of hanging, and a fork child never releases its parent's lock.
#include <fasteners/interprocess_lock.hpp>

#include "file_lock.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

namespace fasteners::detail {

namespace {

// What the calling thread holds, through which object, on which file. Kept
// per thread so that checking for self-deadlock takes no lock.
struct holding {
  std::uint64_t object;  // serial number of the interprocess_lock_state
  file_id file;
  lock_kind kind;
  unsigned count;
  unsigned generation;
};

std::vector<holding>& held_by_this_thread() {
  thread_local std::vector<holding> holdings;
  return holdings;
}

holding* find_holding(std::uint64_t object, unsigned generation) {
  for (auto& h : held_by_this_thread()) {
    if (h.object == object && h.generation == generation) return &h;
  }
  return nullptr;
}

std::atomic<std::uint64_t> next_serial{1};

// Two objects on one file synchronise through the kernel, which neither the
// C++ memory model nor ThreadSanitizer can see. Every object on a file shares
// one atomic here; a release increments it and an acquire reads it, which
// makes each hand-over between threads a visible happens-before edge.
std::shared_ptr<std::atomic<unsigned>> sync_point_for(const file_id& file) {
  static std::mutex* const mutex = new std::mutex;
  static auto* const points = new std::map<file_id, std::weak_ptr<std::atomic<unsigned>>>;
  std::lock_guard<std::mutex> guard(*mutex);
  auto& slot = (*points)[file];
  if (auto existing = slot.lock()) return existing;
  for (auto it = points->begin(); it != points->end();) {
    it = it->second.expired() && it->first != file ? points->erase(it) : std::next(it);
  }
  auto created = std::make_shared<std::atomic<unsigned>>(0);
  slot = created;
  return created;
}

enum class wait_mode { try_once, until_deadline, forever };

[[noreturn]] void throw_errc(std::errc code, const char* what, const std::filesystem::path& path) {
  throw std::system_error(std::make_error_code(code), std::string("fasteners: ") + what + " '" + path.string() + "'");
}

}  // namespace

class interprocess_lock_state {
 public:
  interprocess_lock_state(std::filesystem::path path, interprocess_options options)
      : path_(std::move(path)), options_(options) {}

  ~interprocess_lock_state() {
    auto& mine = held_by_this_thread();
    mine.erase(std::remove_if(mine.begin(), mine.end(), [&](const holding& h) { return h.object == serial_; }),
               mine.end());
    if (!file_) return;
    if (generation_ != process_generation()) {
      file_->abandon_after_fork();  // closing is then safe; releasing is not
      return;
    }
    if (kernel_held_) {
      try {
        file_->release();
      } catch (...) {
        // Closing the descriptor below releases it all the same.
      }
    }
  }

  bool acquire(lock_kind kind, wait_mode mode, deadline until) {
    const unsigned generation = process_generation();
    std::unique_lock<std::mutex> guard(mutex_);
    if (generation != generation_) forget_parent(generation);
    if (!file_) {
      file_ = std::make_unique<file_lock>(path_, options_);
      sync_ = sync_point_for(file_->id());
    }
    const file_id file = file_->id();

    // Self-deadlock: what does this thread already hold on this file?
    bool reads_elsewhere = false;
    for (auto& h : held_by_this_thread()) {
      if (h.generation != generation || h.file != file) continue;
      if (kind == lock_kind::shared && h.kind == lock_kind::shared) {
        if (h.object == serial_) {  // re-entrant read: the kernel lock is already ours
          ++h.count;
          ++readers_;
          return true;
        }
        reads_elsewhere = true;
        continue;
      }
      if (mode == wait_mode::try_once) return false;
      throw_errc(std::errc::resource_deadlock_would_occur,
                 kind == lock_kind::exclusive ? "this thread already holds a lock on"
                                              : "this thread already holds the exclusive lock on",
                 path_);
    }

    auto ready = [&] {
      if (busy_) return false;
      return kind == lock_kind::shared ? !writer_held_ : (!writer_held_ && readers_ == 0);
    };
    auto would_self_deadlock = [&] {
      // An exclusive acquirer of this object cannot finish while this thread
      // reads the file through another object.
      return reads_elsewhere && busy_ && busy_kind_ == lock_kind::exclusive;
    };
    while (!ready()) {
      if (mode == wait_mode::try_once) return false;
      if (would_self_deadlock()) {
        throw_errc(std::errc::resource_deadlock_would_occur,
                   "waiting here would deadlock: this thread reads through another object", path_);
      }
      if (mode == wait_mode::forever) {
        changed_.wait(guard);
      } else if (changed_.wait_until(guard, until) == std::cv_status::timeout && !ready()) {
        return false;
      }
    }

    if (kind == lock_kind::shared && readers_ > 0) {  // other threads read: join them
      ++readers_;
      record(kind, file, generation);
      return true;
    }

    // Fast path: one non-blocking attempt while holding our mutex.
    bool acquired = file_->try_acquire(kind);
    if (!acquired && mode != wait_mode::try_once) {
      busy_ = true;
      busy_kind_ = kind;
      guard.unlock();
      try {
        if (mode == wait_mode::forever) {
          file_->acquire(kind);
          acquired = true;
        } else {
          acquired = file_->acquire_until(kind, until);
        }
      } catch (...) {
        guard.lock();
        busy_ = false;
        changed_.notify_all();
        throw;
      }
      guard.lock();
      busy_ = false;
      changed_.notify_all();
    }
    if (!acquired) return false;
    (void)sync_->load(std::memory_order_acquire);
    kernel_held_ = true;
    if (kind == lock_kind::shared) {
      readers_ = 1;
    } else {
      writer_held_ = true;
    }
    record(kind, file, generation);
    return true;
  }

  // The timed operations: no deadline waits forever, a past one is a try.
  bool acquire_by(lock_kind kind, deadline until) {
    if (until == deadline::max()) return acquire(kind, wait_mode::forever, until);
    if (until <= std::chrono::steady_clock::now()) return acquire(kind, wait_mode::try_once, until);
    return acquire(kind, wait_mode::until_deadline, until);
  }

  void release(lock_kind kind) {
    const unsigned generation = process_generation();
    if (generation != generation_) {
      throw_errc(std::errc::operation_not_permitted, "a lock inherited across fork() stays with the parent:", path_);
    }
    holding* h = find_holding(serial_, generation);
    if (h == nullptr || h->kind != kind) {
      throw_errc(std::errc::operation_not_permitted,
                 kind == lock_kind::shared ? "this thread holds no read lock on" : "this thread does not hold", path_);
    }
    if (--h->count == 0) {
      auto& mine = held_by_this_thread();
      mine.erase(mine.begin() + (h - mine.data()));
    }
    std::lock_guard<std::mutex> guard(mutex_);
    if (kind == lock_kind::shared && --readers_ > 0) return;
    writer_held_ = false;
    kernel_held_ = false;
    changed_.notify_all();
    sync_->fetch_add(1, std::memory_order_release);
    file_->release();
  }

  bool holds(lock_kind kind) const noexcept {
    const holding* h = find_holding(serial_, process_generation());
    return h != nullptr && h->kind == kind;
  }

  const std::filesystem::path& path() const noexcept { return path_; }

  std::intptr_t native_handle() {
    std::lock_guard<std::mutex> guard(mutex_);
    return file_ && generation_ == process_generation() ? file_->native_handle() : -1;
  }

 private:
  void record(lock_kind kind, const file_id& file, unsigned generation) {
    held_by_this_thread().push_back(holding{serial_, file, kind, 1, generation});
  }

  // First use in a fork child: the descriptor and the bookkeeping are the
  // parent's. Leave the parent's lock alone and start afresh.
  void forget_parent(unsigned generation) {
    if (file_) {
      file_->abandon_after_fork();
      file_.reset();
    }
    readers_ = 0;
    writer_held_ = false;
    kernel_held_ = false;
    busy_ = false;
    generation_ = generation;
  }

  const std::filesystem::path path_;
  const interprocess_options options_;
  const std::uint64_t serial_ = next_serial.fetch_add(1, std::memory_order_relaxed);
  unsigned generation_ = process_generation();

  std::mutex mutex_;
  std::condition_variable changed_;
  std::unique_ptr<file_lock> file_;  // opened on first use
  std::shared_ptr<std::atomic<unsigned>> sync_;
  unsigned readers_ = 0;  // read holds through this object, all threads
  bool writer_held_ = false;
  bool kernel_held_ = false;
  bool busy_ = false;  // a thread waits in the kernel for this object, outside mutex_
  lock_kind busy_kind_ = lock_kind::shared;
};

}  // namespace fasteners::detail

namespace fasteners {

using detail::lock_kind;
using detail::wait_mode;

interprocess_lock::interprocess_lock(std::filesystem::path path, interprocess_options options)
    : state_(std::make_unique<detail::interprocess_lock_state>(std::move(path), options)) {}
interprocess_lock::~interprocess_lock() = default;

void interprocess_lock::lock() { state_->acquire(lock_kind::exclusive, wait_mode::forever, detail::deadline::max()); }
bool interprocess_lock::try_lock() { return state_->acquire(lock_kind::exclusive, wait_mode::try_once, {}); }
bool interprocess_lock::try_lock_until_steady(std::chrono::steady_clock::time_point until) {
  return state_->acquire_by(lock_kind::exclusive, until);
}
void interprocess_lock::unlock() { state_->release(lock_kind::exclusive); }
bool interprocess_lock::owns_lock() const noexcept { return state_->holds(lock_kind::exclusive); }
const std::filesystem::path& interprocess_lock::path() const noexcept { return state_->path(); }
std::intptr_t interprocess_lock::native_handle() const { return state_->native_handle(); }

interprocess_reader_writer_lock::interprocess_reader_writer_lock(std::filesystem::path path,
                                                                 interprocess_options options)
    : state_(std::make_unique<detail::interprocess_lock_state>(std::move(path), options)) {}
interprocess_reader_writer_lock::~interprocess_reader_writer_lock() = default;

void interprocess_reader_writer_lock::lock() {
  state_->acquire(lock_kind::exclusive, wait_mode::forever, detail::deadline::max());
}
bool interprocess_reader_writer_lock::try_lock() {
  return state_->acquire(lock_kind::exclusive, wait_mode::try_once, {});
}
bool interprocess_reader_writer_lock::try_lock_until_steady(std::chrono::steady_clock::time_point until) {
  return state_->acquire_by(lock_kind::exclusive, until);
}
void interprocess_reader_writer_lock::unlock() { state_->release(lock_kind::exclusive); }

void interprocess_reader_writer_lock::lock_shared() {
  state_->acquire(lock_kind::shared, wait_mode::forever, detail::deadline::max());
}
bool interprocess_reader_writer_lock::try_lock_shared() {
  return state_->acquire(lock_kind::shared, wait_mode::try_once, {});
}
bool interprocess_reader_writer_lock::try_lock_shared_until_steady(std::chrono::steady_clock::time_point until) {
  return state_->acquire_by(lock_kind::shared, until);
}
void interprocess_reader_writer_lock::unlock_shared() { state_->release(lock_kind::shared); }

bool interprocess_reader_writer_lock::is_reader() const noexcept { return state_->holds(lock_kind::shared); }
bool interprocess_reader_writer_lock::is_writer() const noexcept { return state_->holds(lock_kind::exclusive); }
const std::filesystem::path& interprocess_reader_writer_lock::path() const noexcept { return state_->path(); }
std::intptr_t interprocess_reader_writer_lock::native_handle() const { return state_->native_handle(); }

}  // namespace fasteners
