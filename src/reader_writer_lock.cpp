// reader_writer_lock: how it works.
//
// Readers. std::shared_mutex keeps one reader count, so every read lock and
// unlock on every core writes the same cache line, and two reading cores
// spend their time passing it back and forth. Here, as in folly's
// SharedMutex, a reader instead registers in a slot of a process-wide table:
// it writes the lock's address into "its" slot, a cache line that only its
// thread normally touches. A slot is claimed with a CAS, so a busy slot is
// never shared; a thread that finds its slots busy counts itself in the lock's
// state word instead ("counted" readers).
//
// Each thread registers at most once per lock: reentrant reads only bump a
// thread_local count. That is what lets a thread that already reads read
// again while writers wait (fasteners #86), and what lets the lock tell a
// reader that asks for the write lock that it would deadlock.
//
// Writers. A writer first sets kWriteLocked (its "claim"); from then on no
// new reader gets in. It then moves every slot that names this lock into the
// count, and waits for the count to fall to zero. Slot and state word form a
// Dekker pair: a reader writes its slot, then reads the state; a writer writes
// the state, then reads the slots; all sequentially consistent, so at least
// one of them sees the other. A reader that sees a writer takes its slot back
// (or, if the writer already moved it into the count, decrements the count).
// Readers are anonymous, so a reader whose slot was moved into the count and
// a reader that has since taken the same slot may end up releasing each
// other's registration; the totals still balance.
//
// Scanning the table costs a writer 16 to 256 cache lines, so readers set
// kSlotsInUse before they use a slot, and a writer scans (and clears the bit)
// only if it is set: alternating writers that see no readers never scan.
//
// Waiting. A waiter spins for a few microseconds (the holder may be about to
// let go), then sleeps; nobody polls. Sleepers park in a process-wide table of
// mutex + condition variable buckets chosen by the lock's address (a small
// "parking lot", as in WebKit and folly), not in the lock itself: a thread
// that releases the lock and then wakes sleepers must not touch the lock
// object after its release, because whoever takes the lock next may destroy
// it at once. A thread that must wait takes its bucket's mutex, sets
// kSleepers with a read-modify-write that also tells it whether it still has
// to wait, and sleeps. Whoever clears kSleepers (always in the same
// read-modify-write as the release that may let sleepers go) then takes the
// bucket's mutex and wakes them all; those that still have to wait set
// kSleepers again. Writers queue in arrival order (queue_head_), and only the
// head of the queue may claim the lock.
#include <fasteners/reader_writer_lock.hpp>

#include <algorithm>
#include <condition_variable>
#if defined(_MSC_VER)
#include <intrin.h>
#endif
#include <cstddef>
#include <system_error>
#include <thread>
#include <vector>

namespace fasteners {

namespace detail {
struct rw_waiting_writer {
  rw_waiting_writer* next = nullptr;
};
}  // namespace detail

namespace {

// Bits of reader_writer_lock::state_.
// A writer holds the lock, or has claimed it and waits for readers to leave.
constexpr std::uint32_t kWriteLocked = 1u << 0;
// Writers wait in the queue.
constexpr std::uint32_t kWritersQueued = 1u << 1;
// Readers may be registered in the slot table.
constexpr std::uint32_t kSlotsInUse = 1u << 2;
// Somebody sleeps in the lock's parking bucket.
constexpr std::uint32_t kSleepers = 1u << 3;
// The rest counts readers that are not in a slot.
constexpr std::uint32_t kReaderShift = 4;
constexpr std::uint32_t kOneReader = 1u << kReaderShift;

constexpr std::uint32_t kBlocksReaders = kWriteLocked | kWritersQueued;

constexpr std::uint32_t counted_readers(std::uint32_t state) { return state >> kReaderShift; }

// Where a thread's read registration lives.
constexpr std::int32_t kFailed = -3;      // not registered: a writer is in the way
constexpr std::int32_t kUnderWrite = -2;  // taken by the writer; nothing to register
constexpr std::int32_t kCounted = -1;     // in the state word's count
// (0 and above: an index into the slot table.)

// --- The slot table ---------------------------------------------------------

// 128, not 64: x86 prefetches cache lines in pairs.
constexpr std::size_t kSlotAlign = 128;
constexpr std::size_t kMaxSlots = 256;
// How many slots a reader tries before counting itself in the state word.
constexpr std::size_t kProbes = 4;

struct alignas(kSlotAlign) reader_slot {
  std::atomic<const void*> lock{nullptr};
};
reader_slot g_slots[kMaxSlots];
std::atomic<std::size_t> g_next_home{0};

// A power of two: enough that threads on different cores rarely share a slot,
// few enough that a writer's scan stays short.
std::size_t slot_count() noexcept {
  static const std::size_t count = [] {
    const std::size_t cores = std::max<std::size_t>(1, std::thread::hardware_concurrency());
    std::size_t n = 16;
    while (n < 4 * cores && n < kMaxSlots) n *= 2;
    return n;
  }();
  return count;
}

// --- The parking lot --------------------------------------------------------

struct parking_bucket {
  std::mutex mutex;
  std::condition_variable cv;
};
constexpr std::size_t kBuckets = 64;

// Uses the address only as a key; never reads the lock.
parking_bucket& bucket_of(const void* lock) noexcept {
  static parking_bucket buckets[kBuckets];
  auto key = reinterpret_cast<std::uintptr_t>(lock);
  key ^= key >> 7;
  key ^= key >> 13;
  return buckets[key % kBuckets];
}

// For a thread that has just cleared kSleepers and may no longer touch the lock.
void wake_sleepers(const void* lock) noexcept {
  parking_bucket& bucket = bucket_of(lock);
  std::lock_guard<std::mutex> parked(bucket.mutex);
  bucket.cv.notify_all();
}

// --- What each thread holds -------------------------------------------------

struct held_read {
  const reader_writer_lock* lock;
  std::uint32_t count;
  std::int32_t where;
};

constexpr std::uint32_t kInlineHeld = 8;

// Trivial, so that it needs no construction guard on each access.
struct thread_record {
  held_read held[kInlineHeld];
  std::uint32_t held_count;
  bool spilled;                 // some records live in spilled_reads()
  std::uint32_t home_plus_one;  // this thread's first slot, plus one; 0 until chosen
  std::uint32_t slot_mask;
};
thread_local thread_record t_record;

// For a thread that holds read locks on more than kInlineHeld locks at once.
std::vector<held_read>& spilled_reads() {
  static thread_local std::vector<held_read> reads;
  return reads;
}

// Identifies the calling thread while it lives.
const void* self() noexcept { return &t_record; }

held_read* find_spilled(const reader_writer_lock* lock) noexcept {
  for (held_read& h : spilled_reads()) {
    if (h.lock == lock) return &h;
  }
  return nullptr;
}

inline held_read* find_held(const reader_writer_lock* lock) noexcept {
  thread_record& r = t_record;
  for (std::uint32_t i = 0; i < r.held_count; ++i) {
    if (r.held[i].lock == lock) return &r.held[i];
  }
  return r.spilled ? find_spilled(lock) : nullptr;
}

// May throw std::bad_alloc.
held_read* add_held(const reader_writer_lock* lock, std::int32_t where) {
  thread_record& r = t_record;
  if (r.held_count < kInlineHeld) {
    r.held[r.held_count] = held_read{lock, 1, where};
    return &r.held[r.held_count++];
  }
  std::vector<held_read>& spill = spilled_reads();
  spill.push_back(held_read{lock, 1, where});
  r.spilled = true;
  return &spill.back();
}

void remove_held(held_read* h) noexcept {
  thread_record& r = t_record;
  if (h >= r.held && h < r.held + kInlineHeld) {
    held_read* const last = &r.held[--r.held_count];
    if (h != last) *h = *last;
    return;
  }
  std::vector<held_read>& spill = spilled_reads();
  *h = spill.back();
  spill.pop_back();
  r.spilled = !spill.empty();
}

std::size_t home_slot(thread_record& r) noexcept {
  if (r.home_plus_one == 0) {
    const std::size_t n = slot_count();
    r.slot_mask = static_cast<std::uint32_t>(n - 1);
    r.home_plus_one = static_cast<std::uint32_t>(g_next_home.fetch_add(1, std::memory_order_relaxed) % n) + 1;
  }
  return r.home_plus_one - 1;
}

constexpr auto kForever = std::chrono::steady_clock::time_point::max();

// How long to spin before sleeping: a few microseconds, about what it costs
// to put a thread to sleep and wake it again.
constexpr std::uint32_t kSpins = 128;

inline void cpu_relax() noexcept {
#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
  _mm_pause();
#elif defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__("yield");
#endif
}

[[noreturn]] void throw_error(std::errc code, const char* what) {
  throw std::system_error(std::make_error_code(code), what);
}

}  // namespace

// --- Read side --------------------------------------------------------------

// The common case, kept short: a thread that does not read this lock yet
// takes its home slot, or one that does counts one more hold.
void reader_writer_lock::lock_shared() FASTENERS_NO_THREAD_SAFETY_ANALYSIS {
  thread_record& r = t_record;
  for (std::uint32_t i = 0; i < r.held_count; ++i) {
    if (r.held[i].lock == this) {
      ++r.held[i].count;
      return;
    }
  }
  if (r.held_count < kInlineHeld && !r.spilled && r.home_plus_one != 0 &&
      (state_.load(std::memory_order_relaxed) & (kBlocksReaders | kSlotsInUse)) == kSlotsInUse) {
    const std::uint32_t home = r.home_plus_one - 1;
    std::atomic<const void*>& slot = g_slots[home].lock;
    const void* expected = nullptr;
    if (slot.compare_exchange_strong(expected, this)) {
      // The Dekker pair with a writer's claim (see enter_shared).
      if ((state_.load() & (kBlocksReaders | kSlotsInUse)) == kSlotsInUse) {
        r.held[r.held_count++] = held_read{this, 1, static_cast<std::int32_t>(home)};
        return;
      }
      expected = this;
      if (!slot.compare_exchange_strong(expected, nullptr)) release_counted_reader(nullptr);
    }
  }
  lock_shared_impl(kForever, true);
}

bool reader_writer_lock::try_lock_shared() FASTENERS_NO_THREAD_SAFETY_ANALYSIS {
  return lock_shared_impl(kForever, false);
}

bool reader_writer_lock::try_lock_shared_until_steady(std::chrono::steady_clock::time_point deadline) {
  return lock_shared_impl(deadline, true);
}

bool reader_writer_lock::lock_shared_impl(std::chrono::steady_clock::time_point deadline, bool wait) {
  if (held_read* h = find_held(this)) {
    ++h->count;
    return true;
  }
  if (writer_.load(std::memory_order_relaxed) == self()) {
    add_held(this, kUnderWrite);
    return true;
  }
  // The record first: once registered, nothing may throw.
  held_read* h = add_held(this, kFailed);
  std::int32_t where = enter_shared(nullptr);
  // A writer is in the way: spin a little, as it may be gone soon.
  for (std::uint32_t spin = 0; where == kFailed && wait && spin < kSpins; ++spin) {
    cpu_relax();
    if (!(state_.load(std::memory_order_relaxed) & kBlocksReaders)) where = enter_shared(nullptr);
  }
  if (where == kFailed && wait) {
    try {
      where = lock_shared_slow(deadline);
    } catch (...) {
      remove_held(h);
      throw;
    }
  }
  if (where == kFailed) {
    remove_held(h);
    return false;
  }
  h->where = where;
  return true;
}

// Registers the calling thread as a reader unless a writer is in the way.
// `parked` is the lock's parking bucket, if the caller holds it.
std::int32_t reader_writer_lock::enter_shared(std::unique_lock<std::mutex>* parked) noexcept {
  thread_record& r = t_record;
  std::uint32_t state = state_.load(std::memory_order_relaxed);
  if (state & kBlocksReaders) return kFailed;
  const std::size_t home = home_slot(r);
  for (std::size_t probe = 0; probe < kProbes;) {
    const std::size_t i = (home + probe) & r.slot_mask;
    std::atomic<const void*>& slot = g_slots[i].lock;
    if (slot.load(std::memory_order_relaxed) != nullptr) {
      ++probe;
      continue;
    }
    if ((state & kSlotsInUse) == 0) {
      state = state_.fetch_or(kSlotsInUse) | kSlotsInUse;
      if (state & kBlocksReaders) return kFailed;
    }
    const void* expected = nullptr;
    if (!slot.compare_exchange_strong(expected, this)) {
      ++probe;
      continue;
    }
    // The Dekker pair with a writer's claim: slot written, now read the state.
    state = state_.load();
    if ((state & kSlotsInUse) && !(state & kBlocksReaders)) {
      // Next time start where we found room.
      if (probe != 0) r.home_plus_one = static_cast<std::uint32_t>(i) + 1;
      return static_cast<std::int32_t>(i);
    }
    // A writer got in first: take the registration back, from the count if
    // the writer has already moved it there.
    expected = this;
    if (!slot.compare_exchange_strong(expected, nullptr)) release_counted_reader(parked);
    if (state & kBlocksReaders) return kFailed;
    // A writer came and went and cleared kSlotsInUse under us: try again.
  }
  // No free slot nearby: count ourselves in the state word.
  while (!(state & kBlocksReaders)) {
    if (state_.compare_exchange_weak(state, state + kOneReader, std::memory_order_acquire, std::memory_order_relaxed)) {
      return kCounted;
    }
  }
  return kFailed;
}

std::int32_t reader_writer_lock::lock_shared_slow(std::chrono::steady_clock::time_point deadline) {
  parking_bucket& bucket = bucket_of(this);
  std::unique_lock<std::mutex> parked(bucket.mutex);
  for (;;) {
    const std::int32_t where = enter_shared(&parked);
    if (where != kFailed) return where;
    if (!(state_.fetch_or(kSleepers) & kBlocksReaders)) continue;
    if (deadline == kForever) {
      bucket.cv.wait(parked);
    } else if (bucket.cv.wait_until(parked, deadline) == std::cv_status::timeout) {
      return enter_shared(&parked);
    }
  }
}

void reader_writer_lock::unlock_shared() FASTENERS_NO_THREAD_SAFETY_ANALYSIS {
  thread_record& r = t_record;
  held_read* h = r.held;
  held_read* const last = r.held + r.held_count - 1;
  while (h <= last && h->lock != this) ++h;
  if (h > last) {
    unlock_shared_spilled();
    return;
  }
  if (--h->count != 0) return;
  const std::int32_t where = h->where;
  // Field by field: a 16-byte copy of what was just written in pieces stalls.
  if (h != last) {
    h->lock = last->lock;
    h->count = last->count;
    h->where = last->where;
  }
  --r.held_count;
  if (where >= 0) {
    const void* expected = this;
    if (g_slots[where].lock.compare_exchange_strong(expected, nullptr, std::memory_order_release,
                                                    std::memory_order_relaxed)) {
      return;
    }
    // A writer moved us into the count.
  } else if (where == kUnderWrite) {
    return;
  }
  release_counted_reader(nullptr);
}

// The records that did not fit inline.
void reader_writer_lock::unlock_shared_spilled() {
  held_read* h = t_record.spilled ? find_spilled(this) : nullptr;
  if (h == nullptr) {
    throw_error(std::errc::operation_not_permitted,
                "fasteners::reader_writer_lock::unlock_shared: the calling thread holds no read lock");
  }
  if (--h->count != 0) return;
  const std::int32_t where = h->where;
  remove_held(h);
  if (where >= 0) {
    const void* expected = this;
    if (g_slots[where].lock.compare_exchange_strong(expected, nullptr)) return;
  } else if (where == kUnderWrite) {
    return;
  }
  release_counted_reader(nullptr);
}

// The last counted reader out wakes a writer waiting for readers to leave.
void reader_writer_lock::release_counted_reader(std::unique_lock<std::mutex>* parked) noexcept {
  std::uint32_t state = state_.load(std::memory_order_relaxed);
  std::uint32_t next;
  do {
    next = state - kOneReader;
    if (counted_readers(state) == 1) next &= ~kSleepers;
  } while (!state_.compare_exchange_weak(state, next, std::memory_order_acq_rel, std::memory_order_relaxed));
  if (counted_readers(state) != 1 || !(state & kSleepers)) return;
  if (parked != nullptr) {
    bucket_of(this).cv.notify_all();
  } else {
    wake_sleepers(this);
  }
}

// --- Write side -------------------------------------------------------------

void reader_writer_lock::lock() FASTENERS_NO_THREAD_SAFETY_ANALYSIS { lock_exclusive(kForever, true); }

bool reader_writer_lock::try_lock() FASTENERS_NO_THREAD_SAFETY_ANALYSIS { return lock_exclusive(kForever, false); }

bool reader_writer_lock::try_lock_until_steady(std::chrono::steady_clock::time_point deadline) {
  return lock_exclusive(deadline, true);
}

bool reader_writer_lock::lock_exclusive(std::chrono::steady_clock::time_point deadline, bool wait) {
  if (writer_.load(std::memory_order_relaxed) == self()) {
    ++write_depth_;
    return true;
  }
  if (find_held(this) != nullptr) {
    // Waiting would mean waiting for ourselves to stop reading.
    if (!wait || (deadline != kForever && deadline <= std::chrono::steady_clock::now())) return false;
    throw_error(std::errc::resource_deadlock_would_occur,
                "fasteners::reader_writer_lock: a thread that holds a read lock cannot wait for the write lock");
  }
  // Claim the lock if nobody holds or wants it, spinning a little first.
  std::uint32_t state = state_.load(std::memory_order_relaxed);
  for (std::uint32_t spin = 0;; ++spin) {
    if (!(state & kBlocksReaders) && counted_readers(state) == 0) {
      if (state_.compare_exchange_weak(state, state | kWriteLocked)) break;
      continue;
    }
    if (!wait || spin >= kSpins) return wait && lock_exclusive_slow(deadline);
    cpu_relax();
    state = state_.load(std::memory_order_relaxed);
  }
  // Claimed: wait for the readers still inside, spinning a little first.
  // (Counted readers cannot come in after the claim, so without slot
  // readers there is nobody to wait for.)
  if (state & kSlotsInUse) move_slot_readers_to_count();
  for (std::uint32_t spin = 0; (state & kSlotsInUse) && counted_readers(state_.load(std::memory_order_acquire)) != 0;
       ++spin) {
    if (!wait) {
      abandon_claim();
      return false;
    }
    if (spin < kSpins) {
      cpu_relax();
      continue;
    }
    parking_bucket& bucket = bucket_of(this);
    std::unique_lock<std::mutex> parked(bucket.mutex);
    if (drain_readers(parked, deadline)) break;
    parked.unlock();
    abandon_claim();
    return false;
  }
  writer_.store(self(), std::memory_order_relaxed);
  write_depth_ = 1;
  return true;
}

bool reader_writer_lock::lock_exclusive_slow(std::chrono::steady_clock::time_point deadline) {
  parking_bucket& bucket = bucket_of(this);
  std::unique_lock<std::mutex> parked(bucket.mutex);
  detail::rw_waiting_writer me;
  if (queue_tail_ != nullptr) {
    queue_tail_->next = &me;
  } else {
    queue_head_ = &me;
  }
  queue_tail_ = &me;
  state_.fetch_or(kWritersQueued);

  auto leave_queue = [&] {
    // Only the head leaves, except on a timeout.
    detail::rw_waiting_writer** link = &queue_head_;
    detail::rw_waiting_writer* previous = nullptr;
    while (*link != &me) {
      previous = *link;
      link = &(*link)->next;
    }
    *link = me.next;
    if (queue_tail_ == &me) queue_tail_ = previous;
    if (queue_head_ == nullptr) state_.fetch_and(~kWritersQueued);
  };

  std::uint32_t claimed_from = 0;
  for (;;) {
    if (queue_head_ == &me) {
      std::uint32_t state = state_.load(std::memory_order_relaxed);
      bool claimed = false;
      while (!(state & kWriteLocked) && !claimed) {
        claimed = state_.compare_exchange_weak(state, state | kWriteLocked);
      }
      if (claimed) {
        claimed_from = state;
        break;
      }
    }
    const std::uint32_t state = state_.fetch_or(kSleepers);
    if (queue_head_ == &me && !(state & kWriteLocked)) continue;
    if (deadline != kForever && std::chrono::steady_clock::now() >= deadline) {
      leave_queue();
      // Readers held back by this writer alone, and the next writer, look again.
      state_.fetch_and(~kSleepers);
      bucket.cv.notify_all();
      return false;
    }
    if (deadline == kForever) {
      bucket.cv.wait(parked);
    } else {
      bucket.cv.wait_until(parked, deadline);
    }
  }
  leave_queue();
  if (claimed_from & kSlotsInUse) move_slot_readers_to_count();
  if (!drain_readers(parked, deadline)) {
    parked.unlock();
    abandon_claim();
    return false;
  }
  writer_.store(self(), std::memory_order_relaxed);
  write_depth_ = 1;
  return true;
}

// With the claim made, waits until no counted reader is left.
bool reader_writer_lock::drain_readers(std::unique_lock<std::mutex>& parked,
                                       std::chrono::steady_clock::time_point deadline) {
  parking_bucket& bucket = bucket_of(this);
  for (;;) {
    if (counted_readers(state_.load(std::memory_order_acquire)) == 0) return true;
    if (counted_readers(state_.fetch_or(kSleepers)) == 0) return true;
    if (deadline == kForever) {
      bucket.cv.wait(parked);
    } else if (bucket.cv.wait_until(parked, deadline) == std::cv_status::timeout) {
      return counted_readers(state_.load(std::memory_order_acquire)) == 0;
    }
  }
}

// Gives up a claim that could not be completed. Not under the bucket's mutex.
void reader_writer_lock::abandon_claim() noexcept {
  if (state_.fetch_and(~(kWriteLocked | kSleepers), std::memory_order_release) & kSleepers) wake_sleepers(this);
}

// Called with the claim made: readers registered in slots are moved into the
// count, so that their release tells a waiting writer when they are gone.
void reader_writer_lock::move_slot_readers_to_count() noexcept {
  const std::size_t n = slot_count();
  for (std::size_t i = 0; i < n; ++i) {
    std::atomic<const void*>& slot = g_slots[i].lock;
    if (slot.load() != this) continue;
    // Count first, so that a reader that releases at this moment never
    // takes the count below zero.
    state_.fetch_add(kOneReader, std::memory_order_relaxed);
    const void* expected = this;
    if (!slot.compare_exchange_strong(expected, nullptr)) state_.fetch_sub(kOneReader, std::memory_order_relaxed);
  }
  // While we hold the claim no reader can stay in a slot, so the next writer
  // need not scan unless readers come back.
  state_.fetch_and(~kSlotsInUse, std::memory_order_relaxed);
}

void reader_writer_lock::unlock() FASTENERS_NO_THREAD_SAFETY_ANALYSIS {
  if (writer_.load(std::memory_order_relaxed) != self()) {
    throw_error(std::errc::operation_not_permitted,
                "fasteners::reader_writer_lock::unlock: the calling thread does not hold the write lock");
  }
  if (--write_depth_ != 0) return;
  // A writer that still holds a read lock keeps it: it gets a counted
  // registration in the same step that releases the write lock.
  held_read* h = find_held(this);
  writer_.store(nullptr, std::memory_order_relaxed);
  std::uint32_t state;
  if (h == nullptr) {
    state = state_.fetch_and(~(kWriteLocked | kSleepers), std::memory_order_release);
  } else {
    h->where = kCounted;
    state = state_.load(std::memory_order_relaxed);
    while (!state_.compare_exchange_weak(state, (state & ~(kWriteLocked | kSleepers)) + kOneReader,
                                         std::memory_order_acq_rel, std::memory_order_relaxed)) {
    }
  }
  // From here on `this` may already be gone.
  if (state & kSleepers) wake_sleepers(this);
}

// --- Questions --------------------------------------------------------------

std::size_t detail::queued_writers(const reader_writer_lock& lock) {
  std::lock_guard<std::mutex> parked(bucket_of(&lock).mutex);
  std::size_t count = 0;
  for (const rw_waiting_writer* w = lock.queue_head_; w != nullptr; w = w->next) ++count;
  return count;
}

bool reader_writer_lock::is_reader() const noexcept { return find_held(this) != nullptr; }

bool reader_writer_lock::is_writer(bool /*check_pending*/) const noexcept {
  return writer_.load(std::memory_order_relaxed) == self();
}

bool reader_writer_lock::has_pending_writers() const noexcept {
  const std::uint32_t state = state_.load();
  if (state & kWritersQueued) return true;
  // A writer that has claimed the lock but waits for readers to leave.
  return (state & kWriteLocked) && writer_.load() == nullptr;
}

bool reader_writer_lock::any_slot_reader() const noexcept {
  const std::size_t n = slot_count();
  for (std::size_t i = 0; i < n; ++i) {
    if (g_slots[i].lock.load() == this) return true;
  }
  return false;
}

reader_writer_lock::owner_kind reader_writer_lock::owner() const noexcept {
  if (writer_.load(std::memory_order_acquire) != nullptr) return owner_kind::writer;
  if (find_held(this) != nullptr) return owner_kind::readers;
  const std::uint32_t state = state_.load();
  if (counted_readers(state) != 0) return owner_kind::readers;
  if ((state & kSlotsInUse) && any_slot_reader()) return owner_kind::readers;
  // A writer may have moved a reader from its slot into the count between
  // the two looks; it counts first, so a second look at the count sees it.
  if (counted_readers(state_.load()) != 0) return owner_kind::readers;
  return owner_kind::none;
}

}  // namespace fasteners
