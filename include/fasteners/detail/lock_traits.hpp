// What a lock type can do, for the helpers that accept any lock.
#pragma once

#include <mutex>
#include <shared_mutex>
#include <type_traits>
#include <utility>

namespace fasteners::detail {

// BasicLockable: lock() and unlock().
template <class L, class = void>
struct is_basic_lockable : std::false_type {};
template <class L>
struct is_basic_lockable<L, std::void_t<decltype(std::declval<L&>().lock()), decltype(std::declval<L&>().unlock())>>
    : std::true_type {};

// SharedLockable (enough of it): lock_shared() and unlock_shared().
template <class L, class = void>
struct is_shared_lockable : std::false_type {};
template <class L>
struct is_shared_lockable<
    L, std::void_t<decltype(std::declval<L&>().lock_shared()), decltype(std::declval<L&>().unlock_shared())>>
    : std::true_type {};

// How to hold a lock "for reading": shared if the lock has a shared mode,
// exclusively if it has none (a plain mutex is a fine, if slower, read lock).
template <class L>
using read_guard_for = std::conditional_t<is_shared_lockable<L>::value, std::shared_lock<L>, std::unique_lock<L>>;

}  // namespace fasteners::detail
