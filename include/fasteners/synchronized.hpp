// Data that can only be reached with its lock held.
//
//   fasteners::synchronized<std::map<int, std::string>> names;
//
//   names.wlock()->emplace(1, "one");              // locked for the statement
//   {
//     auto r = names.rlock();                      // shared; const access only
//     if (auto it = r->find(1); it != r->end()) use(it->second);
//   }
//   names.with_lock([](auto& m) { m.clear(); });   // fn runs with the lock held
//   auto size = names.with_read_lock([](const auto& m) { return m.size(); });
//   if (auto w = names.try_wlock_for(std::chrono::milliseconds(10))) w->clear();
//
// What it guarantees:
//   * the value is reachable only through a locked_ptr (or a callable run
//     under the lock), which holds the lock for as long as it lives;
//   * rlock() and with_read_lock() give const access only; with a Lock that
//     has a shared mode (reader_writer_lock, std::shared_mutex, ...) readers
//     share it, with a plain mutex they take it exclusively;
//   * the timed forms (try_wlock_for, try_rlock_for, ...) return a locked_ptr
//     that is empty (false) if the lock could not be had in time.
//
// What it does not do:
//   * a pointer or reference taken out of a locked_ptr outlives the lock; do
//     not keep it;
//   * it is neither copyable nor movable (the lock is not); use copy() for a
//     snapshot of the value.
#pragma once

#include <fasteners/detail/lock_traits.hpp>
#include <fasteners/reader_writer_lock.hpp>

#include <chrono>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <tuple>
#include <type_traits>
#include <utility>

namespace fasteners {

// A pointer to synchronized data that holds the lock while it lives.
// Movable, not copyable; empty (false) if a try_ form failed.
template <class Pointee, class Guard>
class [[nodiscard]] locked_ptr {
 public:
  locked_ptr(Pointee* pointee, Guard guard) noexcept
      : guard_(std::move(guard)), pointee_(guard_.owns_lock() ? pointee : nullptr) {}
  locked_ptr(locked_ptr&& other) noexcept
      : guard_(std::move(other.guard_)), pointee_(std::exchange(other.pointee_, nullptr)) {}
  locked_ptr& operator=(locked_ptr&& other) noexcept {
    guard_ = std::move(other.guard_);
    pointee_ = std::exchange(other.pointee_, nullptr);
    return *this;
  }
  locked_ptr(const locked_ptr&) = delete;
  locked_ptr& operator=(const locked_ptr&) = delete;
  ~locked_ptr() = default;

  // True if the lock is held (and so the data may be used).
  explicit operator bool() const noexcept { return pointee_ != nullptr; }
  Pointee* operator->() const noexcept { return pointee_; }
  Pointee& operator*() const noexcept { return *pointee_; }
  Pointee* get() const noexcept { return pointee_; }

  // Releases the lock early; the pointer is empty afterwards.
  void unlock() {
    pointee_ = nullptr;
    guard_.unlock();
  }

 private:
  Guard guard_;
  Pointee* pointee_;
};

template <class T, class Lock = reader_writer_lock>
class synchronized {
 public:
  using value_type = T;
  using lock_type = Lock;
  using write_ptr = locked_ptr<T, std::unique_lock<Lock>>;
  using read_ptr = locked_ptr<const T, detail::read_guard_for<Lock>>;

  synchronized() = default;
  explicit synchronized(const T& value) : value_(value) {}
  explicit synchronized(T&& value) : value_(std::move(value)) {}
  // Builds the value in place from `args`.
  template <class... Args>
  explicit synchronized(std::in_place_t, Args&&... args) : value_(std::forward<Args>(args)...) {}
  // Builds the value and the lock in place, for locks that need arguments:
  //   synchronized<Config, interprocess_reader_writer_lock> config{
  //       std::piecewise_construct, std::forward_as_tuple(), std::forward_as_tuple("/var/lock/app/config.lock")};
  template <class... ValueArgs, class... LockArgs>
  synchronized(std::piecewise_construct_t, std::tuple<ValueArgs...> value_args, std::tuple<LockArgs...> lock_args)
      : lock_(std::make_from_tuple<Lock>(std::move(lock_args))),
        value_(std::make_from_tuple<T>(std::move(value_args))) {}

  synchronized(const synchronized&) = delete;
  synchronized& operator=(const synchronized&) = delete;

  // Exclusive access until the returned pointer dies.
  write_ptr wlock() { return write_ptr(&value_, std::unique_lock<Lock>(lock_)); }
  // Const access until the returned pointer dies; shared if Lock can share.
  read_ptr rlock() const { return read_ptr(&value_, detail::read_guard_for<Lock>(lock_)); }

  // One attempt each; the pointer is empty if the lock is busy.
  write_ptr try_wlock() { return write_ptr(&value_, std::unique_lock<Lock>(lock_, std::try_to_lock)); }
  read_ptr try_rlock() const { return read_ptr(&value_, detail::read_guard_for<Lock>(lock_, std::try_to_lock)); }

  // Wait at most `timeout` (Lock must be timed); the pointer is empty on timeout.
  template <class Rep, class Period>
  write_ptr try_wlock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return write_ptr(&value_, std::unique_lock<Lock>(lock_, timeout));
  }
  template <class Rep, class Period>
  read_ptr try_rlock_for(const std::chrono::duration<Rep, Period>& timeout) const {
    return read_ptr(&value_, detail::read_guard_for<Lock>(lock_, timeout));
  }
  template <class Clock, class Duration>
  write_ptr try_wlock_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return write_ptr(&value_, std::unique_lock<Lock>(lock_, deadline));
  }
  template <class Clock, class Duration>
  read_ptr try_rlock_until(const std::chrono::time_point<Clock, Duration>& deadline) const {
    return read_ptr(&value_, detail::read_guard_for<Lock>(lock_, deadline));
  }

  // Runs fn(T&) with the lock held exclusively and returns what it returns.
  template <class Fn>
  decltype(auto) with_lock(Fn&& fn) {
    std::unique_lock<Lock> guard(lock_);
    return std::invoke(std::forward<Fn>(fn), value_);
  }
  // Runs fn(const T&) with the lock held for reading and returns what it returns.
  template <class Fn>
  decltype(auto) with_read_lock(Fn&& fn) const {
    detail::read_guard_for<Lock> guard(lock_);
    return std::invoke(std::forward<Fn>(fn), std::as_const(value_));
  }

  // A copy of the value, taken under a read lock.
  T copy() const {
    detail::read_guard_for<Lock> guard(lock_);
    return value_;
  }

 private:
  mutable Lock lock_;
  T value_;
};

}  // namespace fasteners
