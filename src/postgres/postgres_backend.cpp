#include "postgres_backend.hpp"

#include "md5.hpp"
#include "session_registry.hpp"

#include <cxxabi.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <thread>

namespace fasteners {

std::int64_t postgres_hash64_key(std::string_view name) noexcept {
  const auto digest = detail::md5(name);
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | digest[i];
  return static_cast<std::int64_t>(v);
}

std::pair<std::int32_t, std::int32_t> postgres_tooz_keys(std::string_view name) noexcept {
  const auto digest = detail::md5(name);
  return {digest[0], digest[1]};
}

}  // namespace fasteners

namespace fasteners::detail {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

advisory_key::advisory_key(std::string_view name, postgres_key_scheme s) : scheme(s) {
  if (scheme == postgres_key_scheme::hash64) {
    big = postgres_hash64_key(name);
  } else {
    std::tie(first, second) = postgres_tooz_keys(name);
  }
}

std::string advisory_key::sql_arguments() const {
  if (scheme == postgres_key_scheme::hash64) return std::to_string(big);
  return std::to_string(first) + ", " + std::to_string(second);
}

std::string advisory_key::pg_locks_condition() const {
  // pg_locks splits a bigint key into two oids (high and low 32 bits) with
  // objsubid 1; two int4 keys show as themselves with objsubid 2.
  if (scheme == postgres_key_scheme::hash64) {
    const auto u = static_cast<std::uint64_t>(big);
    return "classid = " + std::to_string(u >> 32) + " AND objid = " + std::to_string(u & 0xffffffffu) +
           " AND objsubid = 1";
  }
  return "classid = " + std::to_string(static_cast<std::uint32_t>(first)) +
         " AND objid = " + std::to_string(static_cast<std::uint32_t>(second)) + " AND objsubid = 2";
}

std::string advisory_key::record_suffix() const {
  return (scheme == postgres_key_scheme::hash64 ? "key " : "tooz keys ") + sql_arguments();
}

namespace {

// ---- the pool of idle sessions -------------------------------------------

struct session_pool {
  std::mutex mutex;
  std::map<std::string, std::vector<std::unique_ptr<pg_session>>> idle;
  std::size_t total = 0;
};
constexpr std::size_t pool_per_key = 4;
constexpr std::size_t pool_total = 32;

std::atomic<session_pool*> the_pool{nullptr};

void forget_pool_in_child() {
  // Its sockets are closed by the registry; its mutex may be held by a
  // parent thread. Leak it.
  the_pool.store(nullptr);
}

session_pool& pool() {
  session_pool* p = the_pool.load();
  if (p != nullptr) return *p;
  static std::mutex create;
  std::lock_guard<std::mutex> guard(create);
  p = the_pool.load();
  if (p == nullptr) {
    p = new session_pool;
    on_fork_child(forget_pool_in_child);
    the_pool.store(p);
  }
  return *p;
}

}  // namespace

void postgres_backend::give_to_pool(const std::string& key, std::unique_ptr<pg_session> session) noexcept {
  if (!session || !session->usable() || session->heartbeat_outstanding()) return;
  try {
    auto& p = pool();
    std::lock_guard<std::mutex> guard(p.mutex);
    auto& list = p.idle[key];
    if (list.size() >= pool_per_key || p.total >= pool_total) return;  // closed on return
    list.push_back(std::move(session));
    ++p.total;
  } catch (...) {
  }
}

std::string postgres_backend::pool_key(const session_params& params, const advisory_key& key) {
  return params.conninfo + '\n' + std::to_string(params.liveness.count()) + '\n' + key.record_suffix() + '\n' +
         params.application_name;
}

std::unique_ptr<pg_session> postgres_backend::take_pooled(const std::string& key) {
  auto& p = pool();
  std::unique_ptr<pg_session> found;
  {
    std::lock_guard<std::mutex> guard(p.mutex);
    auto it = p.idle.find(key);
    while (it != p.idle.end() && !it->second.empty()) {
      std::unique_ptr<pg_session> s = std::move(it->second.back());
      it->second.pop_back();
      --p.total;
      if (s->poll_input() && s->usable()) {
        found = std::move(s);
        break;
      }
      // Gone while idle: closed when s dies (outside the mutex would be
      // nicer, but closing is non-blocking).
    }
  }
  return found;
}

// ---- the back end --------------------------------------------------------

postgres_backend::postgres_backend(std::string lock_name, advisory_key key, session_params params,
                                   std::unique_ptr<pg_session> session)
    : name_(std::move(lock_name)),
      key_(key),
      params_(std::move(params)),
      pool_key_(pool_key(params_, key_)),
      session_(std::move(session)) {
  const bool big = key_.scheme == postgres_key_scheme::hash64;
  const std::string args = big ? "$1" : "$1::int4, $2::int4";
  const std::string timeout = big ? "$2" : "$3";
  for (int k = 0; k < 2; ++k) {
    const std::string suffix = k == 0 ? "_shared(" : "(";
    try_sql_[k] = "SELECT pg_try_advisory_lock" + suffix + args + ")";
    // set_config comes first in the target list, so lock_timeout is in force
    // when the lock wait starts: one round trip. On a timeout the error rolls
    // the setting back; otherwise it stays, and the next wait sets its own.
    wait_sql_[k] = "SELECT set_config('lock_timeout', " + timeout + ", false), pg_advisory_lock" + suffix + args + ")";
    unlock_sql_[k] = "SELECT pg_advisory_unlock" + suffix + args + ")";
  }
  socket_.store(session_ ? session_->socket() : -1);
}

postgres_backend::~postgres_backend() {
  liveness_watcher::unwatch(this);
  record_guard guard(session_mutex_);
  if (session_ && !held_) give_to_pool(pool_key_, std::move(session_));
  // Otherwise closing the session releases whatever it held.
}

std::string postgres_backend::describe() const { return "postgres lock '" + name_ + "'"; }

void postgres_backend::throw_failure(const pg_failure& failure, const char* doing) const {
  std::string message = "fasteners: " + describe() + ": " + doing + failure.what();
  throw std::system_error(std::make_error_code(failure.code()), message);
}

deadline postgres_backend::answer_bound() const {
  return steady_clock::now() + std::max(milliseconds(5000), params_.liveness * 2);
}

void postgres_backend::ensure_session() {
  if (session_ && session_->usable()) return;
  drop_session();
  try {
    session_ = take_pooled(pool_key_);
    if (!session_) session_ = pg_session::connect(params_);
  } catch (const pg_failure& e) {
    throw_failure(e, "");
  }
  socket_.store(session_->socket());
}

void postgres_backend::drop_session() noexcept {
  socket_.store(-1);
  session_.reset();
}

bool postgres_backend::try_once(lock_kind kind, deadline bound) {
  const int k = kind == lock_kind::exclusive ? 1 : 0;
  const std::string a =
      key_.scheme == postgres_key_scheme::hash64 ? std::to_string(key_.big) : std::to_string(key_.first);
  const std::string b = std::to_string(key_.second);
  const char* values[] = {a.c_str(), b.c_str()};
  const int n = key_.scheme == postgres_key_scheme::hash64 ? 1 : 2;
  static const char* const names[2][2] = {{"fasteners_try_s", "fasteners_try_x"},
                                          {"fasteners_try_s2", "fasteners_try_x2"}};
  pg_result r = session_->exec_prepared(names[n - 1][k], try_sql_[k].c_str(), n, values, bound);
  return r && PQntuples(r.get()) == 1 && PQgetvalue(r.get(), 0, 0)[0] == 't';
}

bool postgres_backend::wait(lock_kind kind, deadline until) {
  const int k = kind == lock_kind::exclusive ? 1 : 0;
  std::string timeout = "0";  // no limit
  deadline bound = no_deadline;
  if (until != no_deadline) {
    const auto left = std::chrono::ceil<milliseconds>(until - steady_clock::now());
    timeout = std::to_string(std::max<long long>(1, left.count()));
    // The server ends the wait; we only guard against a server that stopped
    // answering altogether.
    bound = until + std::max(milliseconds(5000), params_.liveness * 2);
  }
  const bool big = key_.scheme == postgres_key_scheme::hash64;
  const std::string a = big ? std::to_string(key_.big) : std::to_string(key_.first);
  const std::string b = std::to_string(key_.second);
  const char* values_big[] = {a.c_str(), timeout.c_str()};
  const char* values_tooz[] = {a.c_str(), b.c_str(), timeout.c_str()};
  static const char* const names[2][2] = {{"fasteners_wait_s", "fasteners_wait_x"},
                                          {"fasteners_wait_s2", "fasteners_wait_x2"}};
  session_->send_prepared(names[big ? 0 : 1][k], wait_sql_[k].c_str(), big ? 2 : 3, big ? values_big : values_tooz,
                          answer_bound());
  try {
    session_->await_result(bound);
    return true;
  } catch (abi::__forced_unwind&) {
    settle_cancelled_wait(kind);
    throw;
  } catch (const pg_failure& e) {
    if (e.sqlstate() == "55P03") return false;  // lock_not_available: lock_timeout expired
    throw;
  }
}

void postgres_backend::settle_cancelled_wait(lock_kind kind) noexcept {
  // The waiting thread is being cancelled. The server may grant the lock at
  // any moment until it sees the cancel request, so read the answer: if the
  // lock came, give it back.
  int old_state = 0;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_state);
  session_->cancel();
  bool granted = false;
  try {
    session_->await_result(answer_bound());
    granted = true;
  } catch (const pg_failure&) {
  } catch (...) {
  }
  if (granted) unlock_quietly(kind);
  if (!session_->usable()) drop_session();
  pthread_setcancelstate(old_state, nullptr);
}

void postgres_backend::unlock_quietly(lock_kind kind) noexcept {
  try {
    const int k = kind == lock_kind::exclusive ? 1 : 0;
    session_->exec(unlock_sql_[k].substr(0, unlock_sql_[k].find('(') + 1) + key_.sql_arguments() + ")", answer_bound());
  } catch (...) {
    drop_session();  // closing the session releases it
  }
}

std::int64_t postgres_backend::draw_token() {
  // One sequence for every name: strictly increasing for each of them. A
  // sequence survives restarts (it may skip numbers, never repeat them).
  for (int attempt = 0;; ++attempt) {
    try {
      pg_result r = session_->exec("SELECT nextval('fasteners_fencing_token')", answer_bound());
      return std::atoll(PQgetvalue(r.get(), 0, 0));
    } catch (const pg_failure& e) {
      if (e.sqlstate() != "42P01" || attempt > 0) throw;
    }
    try {
      session_->exec("CREATE SEQUENCE IF NOT EXISTS fasteners_fencing_token", answer_bound());
    } catch (const pg_failure& e) {
      // Two clients creating it at once: one of them gets a unique violation.
      if (e.sqlstate() != "23505" && e.sqlstate() != "42P07") throw;
    }
  }
}

bool postgres_backend::lock(lock_kind kind, deadline until) {
  record_guard guard(session_mutex_);
  ensure_session();
  bool got = false;
  try {
    got = until <= steady_clock::now() ? try_once(kind, answer_bound()) : wait(kind, until);
  } catch (const pg_failure& e) {
    if (e.connection_gone() || !session_->usable()) drop_session();
    throw_failure(e, e.connection_gone() ? "the server connection was lost: " : "");
  }
  if (!got) return false;
  token_.store(0);
  if (fencing_.load() && kind == lock_kind::exclusive) {
    try {
      token_.store(draw_token());
    } catch (const pg_failure& e) {
      unlock_quietly(kind);
      if (session_ && !session_->usable()) drop_session();
      throw_failure(e, "cannot draw a fencing token: ");
    }
  }
  held_ = true;
  held_kind_ = kind;
  // Unique in the process and after fork() (the counter is inherited): a
  // lock object that moves to another record (in a fork child, or after a
  // race to resolve) never mistakes a hold of one back end for another's.
  static std::atomic<std::uint64_t> last_serial{0};
  serial_.store(last_serial.fetch_add(1) + 1);
  liveness_watcher::watch(this);
  return true;
}

void postgres_backend::unlock() {
  int old_state = 0;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_state);
  record_guard guard(session_mutex_);
  liveness_watcher::unwatch(this);
  held_ = false;
  token_.store(0);
  const bool already_lost = lost_serial_.load() == serial_.load();
  if (!session_ || already_lost || !session_->finish_heartbeat(steady_clock::now() + params_.liveness)) {
    if (!already_lost) report_lost();
    drop_session();  // if the server still has it, closing the session frees it
    pthread_setcancelstate(old_state, nullptr);
    return;
  }
  const int k = held_kind_ == lock_kind::exclusive ? 1 : 0;
  bool released = false;
  try {
    const bool big = key_.scheme == postgres_key_scheme::hash64;
    const std::string a = big ? std::to_string(key_.big) : std::to_string(key_.first);
    const std::string b = std::to_string(key_.second);
    const char* values[] = {a.c_str(), b.c_str()};
    static const char* const names[2][2] = {{"fasteners_unlock_s", "fasteners_unlock_x"},
                                            {"fasteners_unlock_s2", "fasteners_unlock_x2"}};
    pg_result r = session_->exec_prepared(names[big ? 0 : 1][k], unlock_sql_[k].c_str(), big ? 1 : 2, values,
                                          steady_clock::now() + std::max(milliseconds(1000), params_.liveness));
    released = r && PQntuples(r.get()) == 1 && PQgetvalue(r.get(), 0, 0)[0] == 't';
  } catch (...) {
  }
  if (!released) {
    // The session is gone, or the server says this session held nothing (a
    // transaction-pooling proxy moved us to another session): the lock was
    // lost, whatever the server does with it now.
    report_lost();
    drop_session();
  }
  pthread_setcancelstate(old_state, nullptr);
}

void postgres_backend::downgrade() {
  record_guard guard(session_mutex_);
  if (!session_ || !session_->finish_heartbeat(steady_clock::now() + params_.liveness)) {
    throw std::system_error(std::make_error_code(std::errc::connection_reset),
                            "fasteners: " + describe() + ": the server connection was lost");
  }
  // The session takes the shared lock while it holds the exclusive one (a
  // session never conflicts with itself), then lets the exclusive one go: no
  // other session gets in between. Two statements, one round trip.
  const std::string args = key_.sql_arguments();
  try {
    session_->exec("SELECT pg_advisory_lock_shared(" + args + "); SELECT pg_advisory_unlock(" + args + ")",
                   answer_bound());
  } catch (const pg_failure& e) {
    if (!session_->usable()) drop_session();
    throw_failure(e, "cannot downgrade: ");
  }
  held_kind_ = lock_kind::shared;
  token_.store(0);
}

bool postgres_backend::verify(std::uint64_t serial) {
  record_guard guard(session_mutex_);
  if (serial == 0 || lost_serial_.load() == serial) return false;
  if (!held_ || serial != serial_.load()) return false;
  bool holds = false;
  if (session_ && session_->finish_heartbeat(steady_clock::now() + params_.liveness)) {
    try {
      pg_result r = session_->exec(
          "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND "
          "database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND " +
              key_.pg_locks_condition(),
          answer_bound());
      holds = std::atoi(PQgetvalue(r.get(), 0, 0)) > 0;
    } catch (...) {
    }
  }
  if (!holds) {
    liveness_watcher::unwatch(this);
    report_lost();
    if (session_) session_->close();
  }
  return holds;
}

bool postgres_backend::check_liveness() noexcept {
  if (!session_mutex_.native().try_lock()) return true;  // in use: alive enough
  std::lock_guard<std::mutex> guard(session_mutex_.native(), std::adopt_lock);
  bool alive = false;
  // The guard above holds the mutex; the analysis cannot see adopt_lock.
  [&]() FASTENERS_NO_THREAD_SAFETY_ANALYSIS {
    if (!held_ || !session_) {
      alive = true;
      return;
    }
    pg_session& s = *session_;
    alive = s.poll_input();
    const auto now = steady_clock::now();
    if (alive && s.heartbeat_outstanding() && now - s.heartbeat_sent() > params_.liveness / 2) alive = false;
    if (alive && !s.heartbeat_outstanding() && now - s.last_answer() >= params_.liveness / 4) {
      alive = s.send_heartbeat();
    }
    if (!alive) s.close();
  }();
  return alive;
}

void postgres_backend::report_lost() noexcept {
  const std::uint64_t serial = serial_.load();
  liveness_watcher::post_lost(mark_hold_lost(), serial);
}

std::vector<std::shared_ptr<lost_listener>> postgres_backend::mark_hold_lost() noexcept {
  const std::uint64_t serial = serial_.load();
  std::vector<std::shared_ptr<lost_listener>> live;
  if (serial == 0 || lost_serial_.exchange(serial) == serial) return live;
  {
    std::lock_guard<std::mutex> guard(listeners_mutex_);
    for (auto& w : listeners_) {
      if (auto l = w.lock()) live.push_back(std::move(l));
    }
  }
  for (auto& l : live) l->mark_lost(serial);
  return live;
}

void postgres_backend::add_listener(std::weak_ptr<lost_listener> listener) {
  std::lock_guard<std::mutex> guard(listeners_mutex_);
  listeners_.erase(std::remove_if(listeners_.begin(), listeners_.end(), [](auto& w) { return w.expired(); }),
                   listeners_.end());
  // Once per object (two of its threads may both resolve the record).
  for (const auto& w : listeners_) {
    if (!w.owner_before(listener) && !listener.owner_before(w)) return;
  }
  listeners_.push_back(std::move(listener));
}

void postgres_backend::forget_after_fork() noexcept {
  // A fork child: no locks, no PQfinish (it would end the parent's session).
  [&]() FASTENERS_NO_THREAD_SAFETY_ANALYSIS {
    if (session_) session_.release()->forget_after_fork();  // leaked on purpose
  }();
  socket_.store(-1);
}

void postgres_backend::absorb_duplicate(lock_backend* other) noexcept {
  auto* duplicate = dynamic_cast<postgres_backend*>(other);
  if (duplicate != nullptr) {
    std::unique_ptr<pg_session> s;
    {
      record_guard guard(duplicate->session_mutex_);
      if (!duplicate->held_) s = std::move(duplicate->session_);
    }
    give_to_pool(pool_key_, std::move(s));
  }
  delete other;
}

// ---- the watcher ---------------------------------------------------------

namespace liveness_watcher {
namespace {

struct lost_event {
  std::vector<std::shared_ptr<lost_listener>> listeners;
  std::uint64_t serial;
};

struct state {
  std::mutex mutex;
  std::vector<postgres_backend*> watched;
  std::deque<lost_event> events;
  int wake[2] = {-1, -1};
  bool started = false;
};

std::atomic<state*> the_state{nullptr};

void forget_in_child() { the_state.store(nullptr); }

void wake(state& s) {
  const char c = 1;
  while (::write(s.wake[1], &c, 1) < 0 && errno == EINTR) {
  }
}

void run(state* s) {
  std::vector<pollfd> fds;
  for (;;) {
    milliseconds tick{1000};
    fds.clear();
    fds.push_back(pollfd{s->wake[0], POLLIN, 0});
    {
      std::lock_guard<std::mutex> guard(s->mutex);
      for (auto* b : s->watched) {
        tick = std::min(tick, std::max(milliseconds(10), b->liveness() / 4));
        const int fd = b->watched_socket();
        if (fd >= 0) fds.push_back(pollfd{fd, POLLIN, 0});
      }
      if (!s->events.empty()) tick = milliseconds(0);
    }
    (void)::poll(fds.data(), fds.size(), static_cast<int>(tick.count()));
    if ((fds[0].revents & POLLIN) != 0) {
      char buffer[64];
      while (::read(s->wake[0], buffer, sizeof buffer) == static_cast<ssize_t>(sizeof buffer)) {
      }
    }
    std::vector<postgres_backend*> dead;
    std::deque<lost_event> events;
    {
      std::lock_guard<std::mutex> guard(s->mutex);
      for (auto it = s->watched.begin(); it != s->watched.end();) {
        if (!(*it)->check_liveness()) {
          dead.push_back(*it);
          it = s->watched.erase(it);
        } else {
          ++it;
        }
      }
      events.swap(s->events);
      // The back ends are alive while we hold the mutex: unwatch() waits.
      for (auto* b : dead) events.push_back(lost_event{b->mark_hold_lost(), b->hold_serial()});
    }
    for (auto& e : events) {
      for (auto& l : e.listeners) l->run_on_lost(e.serial);
    }
  }
}

state& get() {
  state* s = the_state.load();
  if (s != nullptr) return *s;
  static std::mutex create;
  std::lock_guard<std::mutex> guard(create);
  s = the_state.load();
  if (s == nullptr) {
    s = new state;
    if (::pipe(s->wake) != 0) throw std::system_error(errno, std::generic_category(), "fasteners: pipe");
    for (int fd : s->wake) {
      (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
      (void)::fcntl(fd, F_SETFL, O_NONBLOCK);
    }
    on_fork_child(forget_in_child);
    the_state.store(s);
  }
  return *s;
}

void ensure_started(state& s) {
  // Called with s.mutex held.
  if (s.started) return;
  std::thread(run, &s).detach();
  s.started = true;
}

}  // namespace

void watch(postgres_backend* backend) {
  state& s = get();
  // No wake-up: the watcher looks at least every tick, and waking it for
  // every acquisition would cost two context switches per lock (a third of
  // an uncontended try_lock+unlock over the unix socket).
  std::lock_guard<std::mutex> guard(s.mutex);
  ensure_started(s);
  s.watched.push_back(backend);
}

void unwatch(postgres_backend* backend) noexcept {
  state* s = the_state.load();
  if (s == nullptr) return;
  std::lock_guard<std::mutex> guard(s->mutex);
  s->watched.erase(std::remove(s->watched.begin(), s->watched.end(), backend), s->watched.end());
}

void post_lost(std::vector<std::shared_ptr<lost_listener>> listeners, std::uint64_t serial) noexcept {
  if (listeners.empty()) return;
  try {
    state& s = get();
    {
      std::lock_guard<std::mutex> guard(s.mutex);
      ensure_started(s);
      s.events.push_back(lost_event{std::move(listeners), serial});
    }
    wake(s);
  } catch (...) {
  }
}

}  // namespace liveness_watcher

}  // namespace fasteners::detail
