// Deadlines for the timed lock operations, shared by every lock here.
#pragma once

#include <chrono>
#include <type_traits>

namespace fasteners::detail {

// Turns a deadline on any clock into attempts against a steady_clock deadline,
// as the standard timed mutexes do: always at least one attempt, and a clock
// that is adjusted while we wait is read again.
template <class Clock, class Duration, class Attempt>
bool attempt_until(const std::chrono::time_point<Clock, Duration>& deadline, Attempt attempt) {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    return attempt(std::chrono::time_point_cast<std::chrono::steady_clock::duration>(deadline));
  } else {
    for (;;) {
      const auto left = deadline - Clock::now();
      const auto now = std::chrono::steady_clock::now();
      const auto steady =
          left <= left.zero() ? now : now + std::chrono::ceil<std::chrono::steady_clock::duration>(left);
      if (attempt(steady)) return true;
      if (Clock::now() >= deadline) return false;
    }
  }
}

// now + timeout on steady_clock, saturating instead of overflowing.
template <class Rep, class Period>
std::chrono::steady_clock::time_point steady_deadline_after(const std::chrono::duration<Rep, Period>& timeout) {
  const auto now = std::chrono::steady_clock::now();
  if (timeout <= timeout.zero()) return now;
  const auto room = std::chrono::steady_clock::time_point::max() - now;
  if (std::chrono::duration<double>(timeout) >= std::chrono::duration<double>(room)) {
    return std::chrono::steady_clock::time_point::max();
  }
  return now + std::chrono::ceil<std::chrono::steady_clock::duration>(timeout);
}

}  // namespace fasteners::detail
