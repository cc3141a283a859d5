// The resource records, their table, and the helper threads that wait for
// back ends that cannot wait with a deadline. See resource_record.hpp for the
// rules (lock order, fork).
#include "resource_record.hpp"

#include "platform.hpp"

#include <algorithm>
#include <deque>
#include <system_error>
#include <unordered_map>

namespace fasteners::detail {

namespace {

using std::chrono::steady_clock;

// Threads that run blocking back-end waits for timed waiters. Idle threads
// stay a few seconds for the next wait (starting one costs tens of
// microseconds, which a hand-over would otherwise pay), then end.
class helper_pool {
 public:
  // False if no thread could be started; the caller then waits another way.
  bool submit(std::function<void()> job) FASTENERS_EXCLUDES(mutex_) {
    record_guard guard(mutex_);
    jobs_.push_back(std::move(job));
    if (jobs_.size() <= idle_) {
      work_.notify_one();
      return true;
    }
    if (!start_background_thread([this] { run(); })) {
      jobs_.pop_back();
      return false;
    }
    return true;
  }

  static helper_pool& instance() {
    static helper_pool* const first = new helper_pool;  // never destroyed: detached threads use it
    return current_ != nullptr ? *current_ : *first;
  }
  static void prepare_fork() FASTENERS_NO_THREAD_SAFETY_ANALYSIS { instance().mutex_.lock(); }
  static void after_fork_parent() FASTENERS_NO_THREAD_SAFETY_ANALYSIS { instance().mutex_.unlock(); }
  // The child has none of the threads; the old pool (and its locked mutex) is
  // left behind.
  static void after_fork_child() { current_ = new helper_pool; }

 private:
  void run() FASTENERS_EXCLUDES(mutex_) {
    record_guard guard(mutex_);
    for (;;) {
      while (jobs_.empty()) {
        ++idle_;
        const bool woken = guard.wait_until(work_, steady_clock::now() + std::chrono::seconds(5));
        --idle_;
        if (!woken && jobs_.empty()) return;
      }
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      guard.unlock();
      job();
      job = nullptr;  // drops the job's record reference before the pool's mutex (lock order)
      guard.lock();
    }
  }

  static inline helper_pool* current_ = nullptr;
  annotated_mutex mutex_;
  std::condition_variable work_;
  std::deque<std::function<void()>> jobs_ FASTENERS_GUARDED_BY(mutex_);
  std::size_t idle_ FASTENERS_GUARDED_BY(mutex_) = 0;
};

bool is_past(deadline until) noexcept {
  return until == one_try || (until != no_deadline && until <= steady_clock::now());
}

}  // namespace

// ---------------------------------------------------------------------------
// The table: one record per key, counted references, the fork handler.

class record_table {
 public:
  static record_table& instance() {
    static record_table* const first = [] {
      install_fork_handlers();
      return new record_table;  // never destroyed: static lock objects outlive any order
    }();
    return current_ != nullptr ? *current_ : *first;
  }

  record_handle open(const std::function<std::optional<std::string>()>& peek,
                     const std::function<std::unique_ptr<lock_backend>(std::string& key)>& make)
      FASTENERS_EXCLUDES(mutex_) {
    record_guard guard(mutex_);
    if (peek) {
      if (auto key = peek()) {
        auto found = records_.find(*key);
        if (found != records_.end()) return take(found->second);
      }
    }
    std::string key;
    std::unique_ptr<lock_backend> backend = make(key);
    auto found = records_.find(key);
    if (found != records_.end()) {
      found->second->backend_->absorb_duplicate(backend.release());
      return take(found->second);
    }
    auto* created = new resource_record(key, std::move(backend));
    records_.emplace(key, created);
    return take(created);
  }

  record_handle copy(resource_record* r) FASTENERS_EXCLUDES(mutex_) {
    record_guard guard(mutex_);
    return take(r);
  }

  void drop(resource_record* r) noexcept FASTENERS_EXCLUDES(mutex_) {
    record_guard guard(mutex_);
    if (--r->users_ != 0) return;
    auto found = records_.find(r->key_);
    if (found != records_.end() && found->second == r) records_.erase(found);
    delete r;  // closes the back end; under the mutex, so a new record on the same file cannot slip in first
  }

  void prepare_fork() FASTENERS_NO_THREAD_SAFETY_ANALYSIS { mutex_.lock(); }
  void after_fork_parent() FASTENERS_NO_THREAD_SAFETY_ANALYSIS { mutex_.unlock(); }
  // In the child: let go of every inherited back end, then start afresh. The
  // old table (its mutex still held) and its records are left behind.
  void after_fork_child() FASTENERS_NO_THREAD_SAFETY_ANALYSIS {
    for (auto& entry : records_) entry.second->backend_->forget_after_fork();
    current_ = new record_table;
  }

 private:
  record_handle take(resource_record* r) FASTENERS_REQUIRES(mutex_) {
    ++r->users_;
    return record_handle(r);
  }

  static inline record_table* current_ = nullptr;
  annotated_mutex mutex_;
  std::unordered_map<std::string, resource_record*> records_ FASTENERS_GUARDED_BY(mutex_);
};

void records_prepare_fork() noexcept {
  record_table::instance().prepare_fork();
  helper_pool::prepare_fork();
}
void records_after_fork_parent() noexcept {
  helper_pool::after_fork_parent();
  record_table::instance().after_fork_parent();
}
void records_after_fork_child() noexcept {
  helper_pool::after_fork_child();
  record_table::instance().after_fork_child();
}

record_handle open_record(const std::function<std::optional<std::string>()>& peek,
                          const std::function<std::unique_ptr<lock_backend>(std::string& key)>& make) {
  return record_table::instance().open(peek, make);
}

record_handle::~record_handle() {
  // A record inherited from the parent is never touched in a fork child.
  if (record_ != nullptr && record_->generation() == process_generation()) record_table::instance().drop(record_);
}

record_handle& record_handle::operator=(record_handle&& other) noexcept {
  if (this != &other) {
    record_handle old(std::move(*this));
    record_ = other.record_;
    other.record_ = nullptr;
  }
  return *this;
}

record_handle record_handle::copy() const { return record_table::instance().copy(record_); }

// ---------------------------------------------------------------------------
// The record.

struct resource_record::helper_wait {
  lock_kind kind = lock_kind::exclusive;
  waiter* adopter = nullptr;  // the queue head that wants the result, or nullptr
  bool done = false;
  bool acquired = false;
  // Readers took shared locks through the back end while this wait was on.
  // Its grant may then have been converted back to shared (or released) by
  // them before the helper could say so: it is never adopted, only settled
  // against mode_ when it ends.
  bool readers_passed = false;
  std::exception_ptr error;
  // The adopter sleeps here, not on its own waiter's condition variable: the
  // helper can then wake it after letting go of the record's mutex (so that
  // it does not wake into a held mutex), and this outlives both of them.
  std::condition_variable wake;
};

resource_record::resource_record(std::string key, std::unique_ptr<lock_backend> backend)
    : key_(std::move(key)), backend_(std::move(backend)) {}

resource_record::~resource_record() = default;

void resource_record::throw_errc(std::errc code, const char* what) const {
  throw std::system_error(std::make_error_code(code), std::string("fasteners: ") + what + " " + backend_->describe());
}

resource_record::hold* resource_record::find(std::thread::id thread, const void* object, lock_kind kind) {
  for (auto& h : holds_) {
    if (h.thread == thread && h.object == object && h.kind == kind) return &h;
  }
  return nullptr;
}

void resource_record::add_hold(const void* object, lock_kind kind) {
  holds_.push_back(hold{std::this_thread::get_id(), object, kind, 1});
}

void resource_record::leave_queue(waiter* w) {
  queue_.erase(std::find(queue_.begin(), queue_.end(), w));
  wake_head();
}

void resource_record::wake_head() {
  if (!queue_.empty()) queue_.front()->wake.notify_one();
}

void resource_record::release_process_lock_if_unused() {
  if (!holds_.empty() || mode_ == process_mode::none || reserved_) return;
  mode_ = process_mode::none;
  backend_->unlock();
}

bool resource_record::acquire(const void* object, lock_kind kind, deadline until) {
  const auto me = std::this_thread::get_id();
  record_guard guard(mutex_);

  // What the calling thread holds already, through any object.
  for (auto& h : holds_) {
    if (h.thread != me) continue;
    if (kind == lock_kind::shared && h.kind == lock_kind::shared) {
      if (h.object == object) {
        ++h.count;
      } else {
        add_hold(object, kind);  // invalidates h: return at once
      }
      return true;
    }
    if (is_past(until)) return false;
    throw_errc(std::errc::resource_deadlock_would_occur, kind == lock_kind::exclusive
                                                             ? "this thread already holds a lock on"
                                                             : "this thread already holds the exclusive lock on");
  }

  // Take it now if we can. A writer may take a free lock past the queue (the
  // woken head may not run for a while; eventual fairness bounds that); a
  // reader may not, so that waiting writers hold back new readers.
  bool just_tried = false;  // the back end said busy a moment ago: the head need not ask again at once
  const bool past_abandoned = kind == lock_kind::shared && readers_may_pass_helper();
  if ((!backend_busy_ || past_abandoned) && !reserved_ && (queue_.empty() || kind == lock_kind::exclusive)) {
    if (past_abandoned) helper_->readers_passed = true;
    if (mode_ == process_mode::shared && kind == lock_kind::shared) {
      add_hold(object, kind);
      return true;
    }
    if (mode_ == process_mode::none) {
      if (backend_->lock(kind, one_try)) {
        mode_ = kind == lock_kind::shared ? process_mode::shared : process_mode::exclusive;
        add_hold(object, kind);
        return true;
      }
      just_tried = queue_.empty();
    }
  }
  if (is_past(until)) return false;

  // Wait our turn. Only the head of the queue acts; it wakes the next head
  // when it leaves.
  waiter self{kind, {}};
  queue_.push_back(&self);
  try {
    for (;;) {
      if (self.granted) {  // a release handed the lock to us
        reserved_ = false;
        add_hold(object, kind);
        leave_queue(&self);
        return true;
      }
      if (queue_.front() == &self && !reserved_) {
        if (backend_busy_ && helper_ && helper_->adopter == nullptr && helper_->kind == kind &&
            !helper_->readers_passed && mode_ == process_mode::none) {
          // A wait that an earlier waiter gave up on is still on: adopt it.
          const bool got = wait_on_helper(guard, &self, kind, until);
          if (got) add_hold(object, kind);
          leave_queue(&self);
          return got;
        }
        if (backend_busy_ && kind == lock_kind::shared && readers_may_pass_helper()) {
          // A writer of ours gave up, its wait goes on: readers need not
          // wait for it (separate processes would not either).
          helper_->readers_passed = true;
          if (mode_ == process_mode::none && backend_->lock(kind, one_try)) mode_ = process_mode::shared;
          if (mode_ == process_mode::shared) {
            add_hold(object, kind);
            leave_queue(&self);
            return true;
          }
        } else if (!backend_busy_) {
          if (mode_ == process_mode::shared && kind == lock_kind::shared) {
            add_hold(object, kind);
            leave_queue(&self);
            return true;
          }
          if (mode_ == process_mode::none) {
            const bool got = take_process_lock(guard, &self, kind, until, !just_tried);
            if (got) add_hold(object, kind);
            leave_queue(&self);
            return got;
          }
        }
      }
      just_tried = false;
      if (until == no_deadline) {
        guard.wait(self.wake);
      } else if (!guard.wait_until(self.wake, until)) {
        until = one_try;  // one last look, then give up
        if (!self.granted && (queue_.front() != &self || backend_busy_ || mode_ == process_mode::exclusive ||
                              (mode_ == process_mode::shared && kind == lock_kind::exclusive))) {
          leave_queue(&self);
          return false;
        }
      }
    }
  } catch (...) {
    // An error, or pthread_cancel unwinding this thread: leave holding nothing.
    if (self.granted) {
      reserved_ = false;
      leave_queue(&self);
      try {
        release_process_lock_if_unused();
      } catch (...) {
      }
      wake_head();
      throw;
    }
    if (helper_ && helper_->adopter == &self) {
      if (helper_->done) {
        if (helper_->acquired) {
          try {
            backend_->unlock();
          } catch (...) {
          }
        }
        helper_.reset();
        backend_busy_ = false;
      } else {
        helper_->adopter = nullptr;
      }
    }
    leave_queue(&self);
    throw;
  }
}

// The head of the queue takes the process-level lock: a try first, then a
// wait in the back end (or on a helper thread, for back ends that cannot wait
// with a deadline).
bool resource_record::take_process_lock(record_guard& guard, waiter* w, lock_kind kind, deadline until,
                                        bool try_first) {
  bool got = try_first && backend_->lock(kind, one_try);
  if (!got && !is_past(until)) {
    const bool helper = until != no_deadline && !backend_->waits_until();
    if (helper) {
      helper_ = std::make_shared<helper_wait>();
      helper_->kind = kind;
      backend_busy_ = true;
      auto hw = helper_;
      auto pinned = std::make_shared<record_handle>(record_table::instance().copy(this));
      const bool started = helper_pool::instance().submit([this, hw, kind, pinned] {
        bool acquired = false;
        std::exception_ptr error;
        try {
          acquired = backend_->lock(kind, no_deadline);
        } catch (...) {
          error = std::current_exception();
        }
        on_helper_done(acquired, error);
      });
      if (started) return wait_on_helper(guard, w, kind, until);
      helper_.reset();  // no thread to be had: the back end polls instead
    }
    // Wait in the back end without our mutex (the caller's guard owns it
    // again by the time it looks).
    backend_busy_ = true;
    mutex_.unlock();
    try {
      got = backend_->lock(kind, until);
    } catch (...) {
      mutex_.lock();
      backend_busy_ = false;
      throw;
    }
    mutex_.lock();
    backend_busy_ = false;
  }
  if (got) mode_ = kind == lock_kind::shared ? process_mode::shared : process_mode::exclusive;
  return got;
}

bool resource_record::wait_on_helper(record_guard& guard, waiter* w, lock_kind kind, deadline until) {
  std::shared_ptr<helper_wait> hw = helper_;
  hw->adopter = w;
  while (!hw->done) {
    if (until == no_deadline) {
      guard.wait(hw->wake);
    } else if (!guard.wait_until(hw->wake, until) && !hw->done) {
      hw->adopter = nullptr;  // it goes on without us
      return false;
    }
  }
  helper_.reset();
  backend_busy_ = false;
  if (hw->error) std::rethrow_exception(hw->error);
  if (hw->acquired) mode_ = kind == lock_kind::shared ? process_mode::shared : process_mode::exclusive;
  return hw->acquired;
}

void resource_record::on_helper_done(bool acquired, std::exception_ptr error) {
  record_guard guard(mutex_);
  std::shared_ptr<helper_wait> hw = helper_;
  hw->done = true;
  hw->acquired = acquired;
  hw->error = std::move(error);
  if (hw->adopter != nullptr) {
    guard.unlock();
    hw->wake.notify_one();  // it takes the lock (and clears backend_busy_)
    return;
  }
  // Nobody wants it any more. Readers of ours may have come in meanwhile on
  // the same descriptor: the grant then turned their shared lock into this
  // exclusive one (fcntl converts a lock of the same owner), so give back
  // just the exclusive part.
  helper_.reset();
  backend_busy_ = false;
  if (acquired) {
    try {
      if (mode_ == process_mode::shared) {
        backend_->downgrade();
      } else {
        backend_->unlock();
      }
    } catch (...) {
      // Closing the back end frees it at the latest.
    }
  }
  wake_head();
}

// An abandoned wait for the exclusive lock, still queued in the kernel, that
// nobody has adopted: readers may pass it.
bool resource_record::readers_may_pass_helper() {
  return backend_busy_ && helper_ && helper_->adopter == nullptr && !helper_->done &&
         helper_->kind == lock_kind::exclusive;
}

void resource_record::release(const void* object, lock_kind kind) {
  record_guard guard(mutex_);
  hold* h = find(std::this_thread::get_id(), object, kind);
  if (h == nullptr) {
    throw_errc(std::errc::operation_not_permitted,
               kind == lock_kind::shared ? "this thread holds no read lock on" : "this thread does not hold");
  }
  if (--h->count == 0) holds_.erase(holds_.begin() + (h - holds_.data()));
  if (!holds_.empty()) return;
  if (hand_to_head()) return;
  try {
    release_process_lock_if_unused();
  } catch (...) {
    wake_head();
    throw;
  }
  wake_head();
}

// Eventual fairness: every 0.5 ms at most, the last release of an exclusive
// hold keeps the process-level lock and hands it to a writer at the head of
// the queue, which no running thread can then take first.
bool resource_record::hand_to_head() {
  if (queue_.empty() || mode_ != process_mode::exclusive || backend_busy_) return false;
  waiter* head = queue_.front();
  if (head->kind != lock_kind::exclusive) return false;
  const auto now = steady_clock::now();
  if (now < next_fair_handoff_) return false;
  next_fair_handoff_ = now + std::chrono::microseconds(500);
  head->granted = true;
  reserved_ = true;
  head->wake.notify_one();
  return true;
}

void resource_record::downgrade(const void* object) {
  record_guard guard(mutex_);
  hold* h = find(std::this_thread::get_id(), object, lock_kind::exclusive);
  if (h == nullptr) {
    throw_errc(std::errc::operation_not_permitted, "this thread does not hold the write lock on");
  }
  backend_->downgrade();
  h->kind = lock_kind::shared;
  mode_ = process_mode::shared;
  wake_head();
}

void resource_record::forget_object(const void* object) noexcept {
  record_guard guard(mutex_);
  const auto before = holds_.size();
  holds_.erase(std::remove_if(holds_.begin(), holds_.end(), [&](const hold& h) { return h.object == object; }),
               holds_.end());
  if (holds_.size() == before) return;
  try {
    release_process_lock_if_unused();
  } catch (...) {
    // Closing the back end with the record frees it at the latest.
  }
  wake_head();
}

bool resource_record::holds(const void* object, lock_kind kind) {
  record_guard guard(mutex_);
  return find(std::this_thread::get_id(), object, kind) != nullptr;
}

bool resource_record::holds_any(const void* object) {
  record_guard guard(mutex_);
  return find(std::this_thread::get_id(), object, lock_kind::shared) != nullptr ||
         find(std::this_thread::get_id(), object, lock_kind::exclusive) != nullptr;
}

}  // namespace fasteners::detail
