// Decorators: wrap a callable so that every call runs with locks held.
//
//   std::mutex a, b;
//   auto transfer = fasteners::locked(a, b, [&](int amount) { /* a and b held */ });
//   transfer(5);
//
//   fasteners::reader_writer_lock table_lock;
//   auto get = fasteners::read_locked(table_lock, [&](int k) { return table.at(k); });
//   auto put = fasteners::write_locked(table_lock, [&](int k, int v) { table[k] = v; });
//
//   // The object's own locks: the callable takes the object (or a pointer to it) first.
//   auto deposit = fasteners::locked(&Account::mutex_, &Account::deposit);
//   deposit(account, 5);     // or deposit(&account, 5)
//
// What they guarantee:
//   * several locks are taken without deadlock, as std::scoped_lock takes them
//     (std::lock's avoidance algorithm), and all are released when the call
//     returns or throws;
//   * arguments are perfectly forwarded and the result is returned as the
//     callable returns it (a reference stays a reference);
//   * any standard Lockable works, and SharedLockable for read_locked: std
//     mutexes, reader_writer_lock, interprocess_lock and
//     interprocess_reader_writer_lock. read_locked on a lock without a shared
//     mode takes it exclusively.
//
// What they do not do:
//   * they do not own the locks: a lock passed by reference must outlive the
//     returned callable (use interprocess_locked & co. for a callable that owns
//     its lock);
//   * a returned reference points at data that is no longer locked once the
//     call is over;
//   * lock members reached through a const object are locked all the same, so
//     they must be declared `mutable` (as they must for a const member
//     function to lock them).
#pragma once

#include <fasteners/detail/lock_kind.hpp>
#include <fasteners/detail/lock_traits.hpp>

#include <cstddef>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <tuple>
#include <type_traits>
#include <utility>

namespace fasteners {

namespace detail {

template <lock_kind Mode, class... Locks>
struct guard_for {
  using type = std::scoped_lock<Locks...>;
};
template <class Lock>
struct guard_for<lock_kind::shared, Lock> {
  using type = read_guard_for<Lock>;
};

// Runs `fn` with the given locks held.
template <lock_kind Mode, class Fn, class... Locks>
class locked_callable {
 public:
  static_assert(sizeof...(Locks) > 0, "fasteners::locked needs at least one lock");
  static_assert((is_basic_lockable<Locks>::value && ...), "fasteners::locked: every lock needs lock() and unlock()");

  template <class F>
  locked_callable(F&& fn, Locks&... locks) : fn_(std::forward<F>(fn)), locks_(&locks...) {}

  template <class... Args>
  decltype(auto) operator()(Args&&... args) {
    return call(fn_, std::index_sequence_for<Locks...>{}, std::forward<Args>(args)...);
  }
  template <class... Args>
  decltype(auto) operator()(Args&&... args) const {
    return call(fn_, std::index_sequence_for<Locks...>{}, std::forward<Args>(args)...);
  }

 private:
  template <class F, std::size_t... I, class... Args>
  decltype(auto) call(F& fn, std::index_sequence<I...>, Args&&... args) const {
    typename guard_for<Mode, Locks...>::type guard(*std::get<I>(locks_)...);
    return std::invoke(fn, std::forward<Args>(args)...);
  }

  Fn fn_;
  std::tuple<Locks*...> locks_;
};

template <class M>
struct member_pointer_traits;
template <class L, class C>
struct member_pointer_traits<L C::*> {
  using lock_type = L;
  using class_type = C;
};

// Runs `fn(object, args...)` with the object's own lock members held.
template <lock_kind Mode, class Fn, class... Members>
class member_locked_callable {
 public:
  static_assert((std::is_member_object_pointer_v<Members> && ...),
                "fasteners::locked(&T::lock..., fn): every argument but the last must point to a lock member");
  using class_type = typename member_pointer_traits<std::tuple_element_t<0, std::tuple<Members...>>>::class_type;
  static_assert((is_basic_lockable<typename member_pointer_traits<Members>::lock_type>::value && ...),
                "fasteners::locked: every lock member needs lock() and unlock()");

  template <class F>
  member_locked_callable(F&& fn, Members... members) : fn_(std::forward<F>(fn)), members_(members...) {}

  template <class Object, class... Args>
  decltype(auto) operator()(Object&& object, Args&&... args) {
    return call(fn_, std::index_sequence_for<Members...>{}, std::forward<Object>(object), std::forward<Args>(args)...);
  }
  template <class Object, class... Args>
  decltype(auto) operator()(Object&& object, Args&&... args) const {
    return call(fn_, std::index_sequence_for<Members...>{}, std::forward<Object>(object), std::forward<Args>(args)...);
  }

 private:
  // The object itself, or what a pointer (raw or smart) points to.
  template <class Object>
  static decltype(auto) target(Object& object) {
    if constexpr (std::is_base_of_v<class_type, std::remove_cv_t<Object>>) {
      return (object);
    } else {
      return (*object);
    }
  }

  template <class M, class Target>
  static typename member_pointer_traits<M>::lock_type& lock_of(Target& target, M member) {
    // A pointer to member ignores `mutable`, so a lock reached through a const
    // object comes back const; it is a mutable member (see above).
    return const_cast<typename member_pointer_traits<M>::lock_type&>(target.*member);
  }

  template <class F, std::size_t... I, class Object, class... Args>
  decltype(auto) call(F& fn, std::index_sequence<I...>, Object&& object, Args&&... args) const {
    auto& t = target(object);
    typename guard_for<Mode, typename member_pointer_traits<Members>::lock_type...>::type guard(
        lock_of(t, std::get<I>(members_))...);
    return std::invoke(fn, std::forward<Object>(object), std::forward<Args>(args)...);
  }

  Fn fn_;
  std::tuple<Members...> members_;
};

template <lock_kind Mode, class Tuple, std::size_t... I>
auto make_locked(Tuple&& args, std::index_sequence<I...>) {
  constexpr std::size_t last = sizeof...(I);
  using Fn = std::decay_t<std::tuple_element_t<last, std::decay_t<Tuple>>>;
  using First = std::decay_t<std::tuple_element_t<0, std::decay_t<Tuple>>>;
  if constexpr (std::is_member_object_pointer_v<First>) {
    return member_locked_callable<Mode, Fn, std::decay_t<std::tuple_element_t<I, std::decay_t<Tuple>>>...>(
        std::get<last>(std::forward<Tuple>(args)), std::get<I>(args)...);
  } else {
    static_assert((std::is_lvalue_reference_v<std::tuple_element_t<I, std::decay_t<Tuple>>> && ...),
                  "fasteners::locked: pass locks as lvalues; the callable refers to them, it does not own them");
    static_assert((!std::is_const_v<std::remove_reference_t<std::tuple_element_t<I, std::decay_t<Tuple>>>> && ...),
                  "fasteners::locked: a const lock cannot be locked");
    return locked_callable<Mode, Fn, std::remove_reference_t<std::tuple_element_t<I, std::decay_t<Tuple>>>...>(
        std::get<last>(std::forward<Tuple>(args)), std::get<I>(args)...);
  }
}

}  // namespace detail

// locked(lock1, lock2, ..., fn): a callable that runs fn(args...) with every
// lock held exclusively, taken deadlock-free.
// locked(&T::lock1, ..., fn): a callable that runs fn(object, args...) with
// object's lock members held; `object` is a T (reference) or points to one.
template <class... Args>
[[nodiscard]] auto locked(Args&&... args) {
  static_assert(sizeof...(Args) >= 2, "fasteners::locked(locks..., fn) needs at least one lock and a callable");
  return detail::make_locked<detail::lock_kind::exclusive>(std::forward_as_tuple(std::forward<Args>(args)...),
                                                           std::make_index_sequence<sizeof...(Args) - 1>{});
}

// A callable that runs fn(args...) with `lock` held for reading (shared);
// read_locked(&T::lock, fn) runs fn(object, args...) with the object's lock so held.
template <class Lock, class Fn>
[[nodiscard]] auto read_locked(Lock&& lock, Fn&& fn) {
  return detail::make_locked<detail::lock_kind::shared>(
      std::forward_as_tuple(std::forward<Lock>(lock), std::forward<Fn>(fn)), std::make_index_sequence<1>{});
}

// A callable that runs fn(args...) with `lock` held for writing (exclusive);
// write_locked(&T::lock, fn) runs fn(object, args...) with the object's lock so held.
template <class Lock, class Fn>
[[nodiscard]] auto write_locked(Lock&& lock, Fn&& fn) {
  return detail::make_locked<detail::lock_kind::exclusive>(
      std::forward_as_tuple(std::forward<Lock>(lock), std::forward<Fn>(fn)), std::make_index_sequence<1>{});
}

}  // namespace fasteners
