// Decorators: wrap a callable so that every call runs with an inter-process
// lock held.
//
//   auto rebuild = fasteners::interprocess_locked("/var/lock/app/build.lock", [] { ... });
//   rebuild();   // exclusive across processes and threads for the call
//
// The returned callable owns one lock object; copies share it, so they can be
// called from many threads at once. Arguments and results are forwarded; the
// lock is released when the call returns or throws.
#pragma once

#include <fasteners/detail/lock_kind.hpp>
#include <fasteners/interprocess_lock.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <type_traits>
#include <utility>

namespace fasteners {

namespace detail {
template <class Lock, lock_kind Kind, class Fn>
class interprocess_decorated {
 public:
  interprocess_decorated(std::shared_ptr<Lock> lock, Fn fn) : lock_(std::move(lock)), fn_(std::move(fn)) {}

  template <class... Args>
  decltype(auto) operator()(Args&&... args) {
    return call(fn_, *lock_, std::forward<Args>(args)...);
  }
  template <class... Args>
  decltype(auto) operator()(Args&&... args) const {
    return call(fn_, *lock_, std::forward<Args>(args)...);
  }

  // The lock the calls take, for callers who want to inspect or share it.
  Lock& get_lock() const noexcept { return *lock_; }

 private:
  template <class F, class... Args>
  static decltype(auto) call(F& fn, Lock& lock, Args&&... args) {
    if constexpr (Kind == lock_kind::shared) {
      std::shared_lock<Lock> guard(lock);
      return std::invoke(fn, std::forward<Args>(args)...);
    } else {
      std::unique_lock<Lock> guard(lock);
      return std::invoke(fn, std::forward<Args>(args)...);
    }
  }

  std::shared_ptr<Lock> lock_;
  Fn fn_;
};
}  // namespace detail

// `fn` runs with an exclusive interprocess_lock on `path` held.
template <class Fn>
auto interprocess_locked(std::filesystem::path path, Fn&& fn, interprocess_options options = {}) {
  return detail::interprocess_decorated<interprocess_lock, detail::lock_kind::exclusive, std::decay_t<Fn>>(
      std::make_shared<interprocess_lock>(std::move(path), options), std::forward<Fn>(fn));
}

// `fn` runs with a shared (read) interprocess_reader_writer_lock on `path` held.
template <class Fn>
auto interprocess_read_locked(std::filesystem::path path, Fn&& fn, interprocess_options options = {}) {
  return detail::interprocess_decorated<interprocess_reader_writer_lock, detail::lock_kind::shared, std::decay_t<Fn>>(
      std::make_shared<interprocess_reader_writer_lock>(std::move(path), options), std::forward<Fn>(fn));
}

// `fn` runs with an exclusive (write) interprocess_reader_writer_lock on `path` held.
template <class Fn>
auto interprocess_write_locked(std::filesystem::path path, Fn&& fn, interprocess_options options = {}) {
  return detail::interprocess_decorated<interprocess_reader_writer_lock, detail::lock_kind::exclusive,
                                        std::decay_t<Fn>>(
      std::make_shared<interprocess_reader_writer_lock>(std::move(path), options), std::forward<Fn>(fn));
}

}  // namespace fasteners
