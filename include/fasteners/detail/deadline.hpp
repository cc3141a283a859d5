// Deadlines for the timed lock operations, shared by every lock here.
//
// Everything below the public try_lock_for/try_lock_until works with one
// steady_clock::time_point: time_point::max() waits for ever, a deadline at or
// before now is a single try. Getting there from what a caller may pass
// saturates instead of overflowing, whatever the clock, rep or period:
//   * a duration or deadline beyond what steady_clock can represent (hours::max(),
//     time_point<system_clock, seconds>::max(), duration<double>(inf), a year
//     far after 2262) is "no deadline": it waits for ever;
//   * one before now, however far (nanoseconds::min(), system_clock's min(),
//     -inf), is one try;
//   * a floating-point NaN, as a timeout or as a deadline, is one try: it
//     promises no wait, and a lock call must not hang on it;
//   * finite values are rounded up to the next nanosecond, never early.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ratio>
#include <type_traits>

namespace fasteners::detail {

using steady_duration = std::chrono::steady_clock::duration;
using steady_rep = steady_duration::rep;

// Where a conversion landed: inside steady_duration's range, or past either end.
enum class saturation { none, above, below };

struct saturated_duration {
  steady_duration value;
  saturation where;
};

// `d` in steady_clock ticks, rounded up (round_up) or down, clamped to the
// representable range. NaN lands below.
template <class Rep, class Period>
saturated_duration to_steady_duration(const std::chrono::duration<Rep, Period>& d, bool round_up) noexcept {
  static_assert(Period::num > 0, "a negative period is not a duration");
  constexpr steady_rep top = std::numeric_limits<steady_rep>::max();
  constexpr steady_rep bottom = std::numeric_limits<steady_rep>::min();
  using factor = std::ratio_divide<Period, steady_duration::period>;  // ticks per unit of `d`
  constexpr saturated_duration above{steady_duration(top), saturation::above};
  constexpr saturated_duration below{steady_duration(bottom), saturation::below};
  if constexpr (std::is_floating_point_v<Rep>) {
    const long double x = static_cast<long double>(d.count()) * static_cast<long double>(factor::num) /
                          static_cast<long double>(factor::den);
    if (!(x == x)) return below;  // NaN
    // 2^63 is exact in every floating-point type; anything below it fits once rounded.
    constexpr long double limit = static_cast<long double>(std::uint64_t{1} << 63);
    if (x >= limit) return above;
    if (x < -limit) return below;
    const long double whole = round_up ? std::ceil(x) : std::floor(x);
    if (whole >= limit) return above;
    return {steady_duration(static_cast<steady_rep>(whole)), saturation::none};
  } else {
    static_assert(std::is_integral_v<Rep>, "durations with class-type reps are not supported");
    using wide = std::intmax_t;
    constexpr wide num = factor::num;
    constexpr wide den = factor::den;
    wide count;
    if constexpr (std::is_unsigned_v<Rep>) {
      if (static_cast<std::uintmax_t>(d.count()) > static_cast<std::uintmax_t>(std::numeric_limits<wide>::max())) {
        return above;
      }
      count = static_cast<wide>(d.count());
    } else {
      count = static_cast<wide>(d.count());
    }
    // count * num / den, in pieces that cannot overflow: whole multiples of
    // den, then the remainder (|r| < den).
    const wide q = count / den;
    const wide r = count % den;
    if (q > top / num) return above;
    if (q < bottom / num) return below;
    const wide scaled = q * num;
    wide part;
    if constexpr (num <= std::numeric_limits<wide>::max() / den) {
      const wide t = r * num;
      part = t / den;
      const wide rest = t % den;
      if (round_up && rest > 0) ++part;
      if (!round_up && rest < 0) --part;
    } else {  // a ratio too odd for exact arithmetic: rounded in long double
      const long double t = static_cast<long double>(r) * static_cast<long double>(num) / static_cast<long double>(den);
      part = static_cast<wide>(round_up ? std::ceil(t) : std::floor(t));
    }
    if (part > 0 && scaled > top - part) return above;
    if (part < 0 && scaled < bottom - part) return below;
    return {steady_duration(static_cast<steady_rep>(scaled + part)), saturation::none};
  }
}

// a - b, saturating.
constexpr saturated_duration steady_difference(steady_duration a, steady_duration b) noexcept {
  constexpr steady_rep top = std::numeric_limits<steady_rep>::max();
  constexpr steady_rep bottom = std::numeric_limits<steady_rep>::min();
  const steady_rep x = a.count();
  const steady_rep y = b.count();
  if (y < 0 && x > top + y) return {steady_duration(top), saturation::above};
  if (y > 0 && x < bottom + y) return {steady_duration(bottom), saturation::below};
  return {steady_duration(x - y), saturation::none};
}

// now + timeout on steady_clock: max() if that is beyond what it can hold, now
// itself for a timeout that is zero, negative or NaN.
template <class Rep, class Period>
std::chrono::steady_clock::time_point steady_deadline_after(const std::chrono::duration<Rep, Period>& timeout) {
  const auto now = std::chrono::steady_clock::now();
  const saturated_duration left = to_steady_duration(timeout, true);
  if (left.where == saturation::below || left.value <= steady_duration::zero()) return now;
  if (left.where == saturation::above || left.value >= std::chrono::steady_clock::time_point::max() - now) {
    return std::chrono::steady_clock::time_point::max();
  }
  return now + left.value;
}

// Whether `d` is within half the range of To (an integral duration).
template <class To, class Rep, class Period>
bool fits_half_of(const std::chrono::duration<Rep, Period>& d) noexcept {
  using factor = std::ratio_divide<Period, typename To::period>;
  const long double x = static_cast<long double>(d.count()) * static_cast<long double>(factor::num) /
                        static_cast<long double>(factor::den);
  const long double half = static_cast<long double>(std::numeric_limits<typename To::rep>::max()) / 2;
  return x < half && x > -half;
}

// How long until `deadline` on its own clock, saturating; `now` is that
// clock's reading. Exact to the nanosecond where both fit steady_clock's
// range (every clock the standard has, for the next two centuries); otherwise
// computed in long double.
template <class Clock, class Duration>
saturated_duration time_left(const std::chrono::time_point<Clock, Duration>& deadline,
                             const typename Clock::time_point& now) noexcept {
  if (deadline == std::chrono::time_point<Clock, Duration>::max()) {
    return {steady_duration::max(), saturation::above};
  }
  using now_duration = typename Clock::duration;
  if constexpr (!std::is_floating_point_v<typename Duration::rep> &&
                !std::is_floating_point_v<typename now_duration::rep>) {
    const saturated_duration end = to_steady_duration(deadline.time_since_epoch(), true);
    const saturated_duration start = to_steady_duration(now.time_since_epoch(), false);
    if (start.where == saturation::none) {
      if (end.where != saturation::none) return end;
      return steady_difference(end.value, start.value);
    }
    // A clock beyond steady_clock's range: exact in the clocks' common type
    // when both readings are well inside it, so the difference cannot overflow.
    using common = std::common_type_t<Duration, now_duration>;
    if (fits_half_of<common>(deadline.time_since_epoch()) && fits_half_of<common>(now.time_since_epoch())) {
      return to_steady_duration(common(deadline.time_since_epoch()) - common(now.time_since_epoch()), true);
    }
  }
  // Floating-point reps, or readings at the very ends of their own range: no
  // overflow is possible in long double.
  using wide = std::chrono::duration<long double, steady_duration::period>;
  return to_steady_duration(wide(deadline.time_since_epoch()) - wide(now.time_since_epoch()), true);
}

// The steady_clock deadline for a steady_clock time point of any duration.
template <class Duration>
std::chrono::steady_clock::time_point steady_deadline_at(
    const std::chrono::time_point<std::chrono::steady_clock, Duration>& deadline) noexcept {
  using std::chrono::steady_clock;
  if constexpr (std::is_same_v<Duration, steady_duration>) {
    return deadline;
  } else {
    if (deadline == std::chrono::time_point<steady_clock, Duration>::max()) return steady_clock::time_point::max();
    const saturated_duration since = to_steady_duration(deadline.time_since_epoch(), true);
    if (since.where == saturation::above) return steady_clock::time_point::max();
    if (since.where == saturation::below) return steady_clock::time_point::min();
    return steady_clock::time_point(since.value);
  }
}

// Turns a deadline on any clock into attempts against a steady_clock deadline,
// as the standard timed mutexes do: always at least one attempt, and a clock
// that is adjusted while we wait is read again.
template <class Clock, class Duration, class Attempt>
bool attempt_until(const std::chrono::time_point<Clock, Duration>& deadline, Attempt attempt) {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    return attempt(steady_deadline_at(deadline));
  } else {
    for (;;) {
      const saturated_duration left = time_left(deadline, Clock::now());
      const auto now = std::chrono::steady_clock::now();
      std::chrono::steady_clock::time_point steady;
      if (left.where == saturation::below || left.value <= steady_duration::zero()) {
        steady = now;
      } else if (left.where == saturation::above || left.value >= std::chrono::steady_clock::time_point::max() - now) {
        steady = std::chrono::steady_clock::time_point::max();
      } else {
        steady = now + left.value;
      }
      if (attempt(steady)) return true;
      const saturated_duration after = time_left(deadline, Clock::now());
      if (after.where == saturation::below || after.value <= steady_duration::zero()) return false;
    }
  }
}

}  // namespace fasteners::detail
