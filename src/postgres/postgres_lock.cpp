// The lock objects: a name, options and a handle on the resource record of
// that name in that database, resolved on first lock. Everything about holds
// lives in the record; the object only remembers which hold (serial number)
// it took part in last, to answer lost() and run on_lost once.
#include <fasteners/postgres_lock.hpp>

#include "postgres_backend.hpp"
#include "resource_record.hpp"

#include <errno.h>

#include <atomic>
#include <map>
#include <optional>

namespace fasteners::detail {

namespace {

std::string program_name() {
#if defined(__GLIBC__)
  return program_invocation_short_name;
#else
  return "fasteners";
#endif
}

// What each conninfo string reached last time: lets a second object on a
// name find its record without connecting.
std::mutex identities_mutex;
std::map<std::string, std::string>* identities = new std::map<std::string, std::string>;

std::optional<std::string> known_identity(const std::string& conninfo) {
  std::lock_guard<std::mutex> guard(identities_mutex);
  auto it = identities->find(conninfo);
  if (it == identities->end()) return std::nullopt;
  return it->second;
}

void remember_identity(const std::string& conninfo, const std::string& identity) {
  std::lock_guard<std::mutex> guard(identities_mutex);
  if (identities->size() > 1000) identities->clear();
  (*identities)[conninfo] = identity;
}

[[noreturn]] void throw_errc(std::errc code, const std::string& name, const char* what) {
  throw std::system_error(std::make_error_code(code), "fasteners: postgres lock '" + name + "': " + what);
}

}  // namespace

class postgres_lock_state final : public lost_listener, public std::enable_shared_from_this<postgres_lock_state> {
 public:
  postgres_lock_state(std::string name, postgres_options options)
      : name_(std::move(name)), options_(std::move(options)), key_(name_, options_.key_scheme) {
    if (options_.liveness < std::chrono::milliseconds(100)) options_.liveness = std::chrono::milliseconds(100);
  }

  // The public object goes away: drop every hold taken through it.
  void close() noexcept {
    resource_record* r = record_.exchange(nullptr, std::memory_order_acq_rel);
    if (r == nullptr) return;
    if (r->generation() != process_generation()) return;  // the parent's: never touched in a fork child
    r->forget_object(this);
    record_handle owned(r);  // gives back the reference this object held
  }

  bool acquire(lock_kind kind, deadline until) {
    resource_record* r = resolve();
    if (!r->acquire(this, kind, until)) return false;
    serial_.store(backend_of(r).hold_serial());
    return true;
  }

  void release(lock_kind kind) {
    resource_record* r = record_.load(std::memory_order_acquire);
    if (r != nullptr && r->generation() != process_generation()) {
      throw_errc(std::errc::operation_not_permitted, name_, "a lock inherited across fork() stays with the parent");
    }
    if (r == nullptr) throw_errc(std::errc::operation_not_permitted, name_, "this thread does not hold it");
    r->release(this, kind);
  }

  void downgrade() {
    resource_record* r = current();
    if (r == nullptr) throw_errc(std::errc::operation_not_permitted, name_, "this thread does not hold it");
    r->downgrade(this);
  }

  bool holds(lock_kind kind) {
    resource_record* r = current();
    return r != nullptr && r->holds(this, kind);
  }

  bool lost() const noexcept {
    if (current() == nullptr) return false;  // nothing taken here (a fork child asks about the parent's)
    const std::uint64_t serial = serial_.load();
    return serial != 0 && lost_serial_.load() == serial;
  }

  void ensure_held() {
    resource_record* r = current();
    if (r == nullptr || !r->holds_any(this)) {
      throw_errc(std::errc::operation_not_permitted, name_, "this thread holds nothing through this object");
    }
    if (lost() || !backend_of(r).verify(serial_.load())) {
      throw lock_lost(std::make_error_code(std::errc::connection_reset),
                      "fasteners: postgres lock '" + name_ + "': the lock was lost (its server session is gone)");
    }
  }

  std::int64_t fencing_token() {
    resource_record* r = current();
    if (r == nullptr || !r->holds(this, lock_kind::exclusive) || lost()) return 0;
    return backend_of(r).fencing_token();
  }

  void set_on_lost(std::function<void()> callback) {
    std::lock_guard<std::mutex> guard(callback_mutex_);
    on_lost_ = std::move(callback);
  }

  const std::string& name() const noexcept { return name_; }

  void mark_lost(std::uint64_t serial) noexcept override { lost_serial_.store(serial); }

  void run_on_lost(std::uint64_t serial) noexcept override {
    if (fired_serial_.exchange(serial) == serial || serial_.load() != serial) return;
    std::function<void()> callback;
    {
      std::lock_guard<std::mutex> guard(callback_mutex_);
      callback = on_lost_;
    }
    if (!callback) return;
    try {
      callback();
    } catch (...) {
      // A callback's exception has nowhere to go on the watcher's thread.
    }
  }

 private:
  static postgres_backend& backend_of(resource_record* r) { return static_cast<postgres_backend&>(r->backend()); }

  // The record, or nullptr before the first lock or in a fork child.
  resource_record* current() const noexcept {
    resource_record* r = record_.load(std::memory_order_acquire);
    return r != nullptr && r->generation() == process_generation() ? r : nullptr;
  }

  // Resolves the record on first use, and again in a fork child. No mutex of
  // the object's own (as in interprocess_lock.cpp): one that a parent thread
  // held at fork() time would hang the child for ever. Two threads may race to
  // resolve (and both connect, the first time); one reference is kept.
  resource_record* resolve() {
    resource_record* r = record_.load(std::memory_order_acquire);
    for (;;) {
      if (r != nullptr && r->generation() == process_generation()) return r;
      const bool replaces_parents = r != nullptr;
      std::uint64_t parents_serial = serial_.load();
      record_handle fresh = open_fresh_record();
      // Set up before it is published: a thread that finds the record through
      // this object may take and lose a hold at once.
      postgres_backend& backend = backend_of(fresh.get());
      if (options_.fencing_tokens) backend.want_fencing_tokens();
      backend.add_listener(weak_from_this());
      if (record_.compare_exchange_strong(r, fresh.get(), std::memory_order_acq_rel)) {
        resource_record* mine = fresh.get();
        fresh.leak();  // the object owns this reference now (an inherited one is left behind)
        // A fork child: the parent's hold is not ours (unless a thread of
        // this process already took one: serials are never reused).
        if (replaces_parents) serial_.compare_exchange_strong(parents_serial, 0);
        return mine;
      }
      // Another thread resolved first: `r` is its record; ours is dropped.
    }
  }

  record_handle open_fresh_record() {
    session_params params;
    params.conninfo = options_.conninfo;
    params.liveness = options_.liveness;
    params.application_name = program_name() + ": lock " + name_;
    // The server as it names itself, not the conninfo string: two spellings
    // of one database share one record. Connecting is slow: never inside
    // open_record (it holds the record table's mutex).
    std::optional<std::string> identity = known_identity(params.conninfo);
    std::unique_ptr<pg_session> session;
    if (!identity) {
      try {
        session = postgres_backend::take_pooled(postgres_backend::pool_key(params, key_));
        if (!session) session = pg_session::connect(params);
      } catch (const pg_failure& e) {
        throw std::system_error(std::make_error_code(e.code()),
                                "fasteners: postgres lock '" + name_ + "': " + e.what());
      }
      identity = session->server_identity();
      remember_identity(params.conninfo, *identity);
    }
    const std::string record_key = "postgres " + *identity + " " + key_.record_suffix();
    record_handle fresh =
        open_record([&]() -> std::optional<std::string> { return record_key; },
                    [&](std::string& key) -> std::unique_ptr<lock_backend> {
                      key = record_key;
                      // Without a session yet, the back end connects on first lock.
                      return std::make_unique<postgres_backend>(name_, key_, params, std::move(session));
                    });
    if (session) postgres_backend::give_to_pool(postgres_backend::pool_key(params, key_), std::move(session));
    return fresh;
  }

  const std::string name_;
  postgres_options options_;
  const advisory_key key_;

  // Owns one reference to the record (none while null). The parent's, in a
  // fork child, until a new one replaces it: then that reference is leaked.
  std::atomic<resource_record*> record_{nullptr};

  std::atomic<std::uint64_t> serial_{0};       // the hold this object took part in last (0: none)
  std::atomic<std::uint64_t> lost_serial_{0};  // the latest hold reported lost
  std::atomic<std::uint64_t> fired_serial_{0};
  std::mutex callback_mutex_;
  std::function<void()> on_lost_;
};

}  // namespace fasteners::detail

namespace fasteners {

using detail::lock_kind;

// ---- postgres_lock --------------------------------------------------------

postgres_lock::postgres_lock(std::string name, postgres_options options)
    : state_(std::make_shared<detail::postgres_lock_state>(std::move(name), std::move(options))) {}

postgres_lock::~postgres_lock() { state_->close(); }

void postgres_lock::lock() { (void)state_->acquire(lock_kind::exclusive, detail::no_deadline); }
bool postgres_lock::try_lock() { return state_->acquire(lock_kind::exclusive, detail::one_try); }
bool postgres_lock::try_lock_until_steady(std::chrono::steady_clock::time_point deadline) {
  return state_->acquire(lock_kind::exclusive, deadline);
}
void postgres_lock::unlock() { state_->release(lock_kind::exclusive); }
bool postgres_lock::owns_lock() const { return state_->holds(lock_kind::exclusive); }
const std::string& postgres_lock::name() const noexcept { return state_->name(); }
bool postgres_lock::lost() const noexcept { return state_->lost(); }
void postgres_lock::ensure_held() { state_->ensure_held(); }
std::int64_t postgres_lock::fencing_token() const { return state_->fencing_token(); }
void postgres_lock::on_lost(std::function<void()> callback) { state_->set_on_lost(std::move(callback)); }

// ---- postgres_reader_writer_lock -------------------------------------------

postgres_reader_writer_lock::postgres_reader_writer_lock(std::string name, postgres_options options)
    : state_(std::make_shared<detail::postgres_lock_state>(std::move(name), std::move(options))) {}

postgres_reader_writer_lock::~postgres_reader_writer_lock() { state_->close(); }

void postgres_reader_writer_lock::lock() { (void)state_->acquire(lock_kind::exclusive, detail::no_deadline); }
bool postgres_reader_writer_lock::try_lock() { return state_->acquire(lock_kind::exclusive, detail::one_try); }
bool postgres_reader_writer_lock::try_lock_until_steady(std::chrono::steady_clock::time_point deadline) {
  return state_->acquire(lock_kind::exclusive, deadline);
}
void postgres_reader_writer_lock::unlock() { state_->release(lock_kind::exclusive); }
void postgres_reader_writer_lock::lock_shared() { (void)state_->acquire(lock_kind::shared, detail::no_deadline); }
bool postgres_reader_writer_lock::try_lock_shared() { return state_->acquire(lock_kind::shared, detail::one_try); }
bool postgres_reader_writer_lock::try_lock_shared_until_steady(std::chrono::steady_clock::time_point deadline) {
  return state_->acquire(lock_kind::shared, deadline);
}
void postgres_reader_writer_lock::unlock_shared() { state_->release(lock_kind::shared); }
bool postgres_reader_writer_lock::is_reader() const { return state_->holds(lock_kind::shared); }
bool postgres_reader_writer_lock::is_writer() const { return state_->holds(lock_kind::exclusive); }
const std::string& postgres_reader_writer_lock::name() const noexcept { return state_->name(); }
bool postgres_reader_writer_lock::lost() const noexcept { return state_->lost(); }
void postgres_reader_writer_lock::ensure_held() { state_->ensure_held(); }
std::int64_t postgres_reader_writer_lock::fencing_token() const { return state_->fencing_token(); }
void postgres_reader_writer_lock::on_lost(std::function<void()> callback) { state_->set_on_lost(std::move(callback)); }

}  // namespace fasteners
