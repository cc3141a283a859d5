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
// Slots pay off only once readers overlap: a reader alone counts itself in
// the state word (one read-modify-write, as std::shared_mutex does); one that
// meets another reader there sets kSlotsInUse and from then on readers use
// slots. A writer scans the table only if kSlotsInUse is set, and clears it:
// alternating readers and writers on one thread never scan.
//
// Waiting. A waiter spins for about a microsecond at most (a writer that
// finds another writer inside not at all; see kSpins), then sleeps; nobody
// polls. Sleepers park in a process-wide table of
// buckets chosen by the lock's address (a small "parking lot", as in WebKit,
// parking_lot and folly), not in the lock itself: a thread that releases the
// lock and then wakes sleepers must not touch the lock object after its
// release, because whoever takes the lock next may destroy it at once. Each
// sleeper is a node on its own stack, queued in its bucket in arrival order,
// and waits on its own token (a futex word on Linux, else a mutex and
// condition variable). A thread sets kWritersParked, kReadersParked or
// kDrainerParked under the bucket's mutex with a read-modify-write that also
// checks it still has to wait; a release that sees such a bit takes the
// bucket's mutex and wakes exactly whom the lock now lets in: the first
// sleeping writer, or else every sleeping reader (the last counted reader
// wakes the writer draining readers).
//
// Fairness. Woken threads race with newcomers for the lock (barging): the
// lock never stands idle while a sleeper gets onto a CPU, which is what made
// a strict first-come first-served hand-over a convoy once threads
// outnumbered cores. So that nobody is overtaken for ever, a release hands
// the lock over directly, without it ever being free, to the longest waiter
// for this lock (a writer, or the readers ahead of the first writer) when the
// bucket's fair-turn timer has run out: every 0.5 to 1 ms, at random, as
// parking_lot does. A thread woken for nothing sleeps again in the place it
// had (its ticket), so the longest waiter stays first in line.
//
// A woken writer sets kWriterWoken (under the bucket's mutex, with the
// wake) and keeps it until it has settled: taken the lock, gone back to
// sleep or given up (settle_waiters). Like kWritersParked it holds back new
// readers, so that readers asleep behind it do not get in first. While it is
// set a release wakes nobody and takes no mutex (as Go's mutexWoken): without
// that, every release between a wake and the moment the woken writer gets a
// CPU (a whole time slice when threads outnumber cores) went through the
// bucket, and woke the next writer too, which then fought the first.
#include <fasteners/reader_writer_lock.hpp>

// Sleepers wait on a futex on Linux; elsewhere (or with
// FASTENERS_RW_PORTABLE_WAIT, to test that path) on a condition variable.
#if defined(__linux__) && !defined(FASTENERS_RW_PORTABLE_WAIT)
#define FASTENERS_RW_FUTEX 1
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <condition_variable>
#if defined(_MSC_VER)
#include <intrin.h>
#endif
#include <cstddef>
#include <ctime>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace fasteners {

namespace {

// Bits of reader_writer_lock::state_.
// A writer holds the lock, or has claimed it and waits for readers to leave.
constexpr std::uint32_t kWriteLocked = 1u << 0;
// Writers sleep in the parking bucket. Holds back new readers.
constexpr std::uint32_t kWritersParked = 1u << 1;
// Readers may be registered in the slot table.
constexpr std::uint32_t kSlotsInUse = 1u << 2;
// Readers sleep in the parking bucket (or did: cleared lazily).
constexpr std::uint32_t kReadersParked = 1u << 3;
// The writer that claimed the lock sleeps until the counted readers are gone.
constexpr std::uint32_t kDrainerParked = 1u << 4;
// A writer was woken from the bucket and has not settled yet (taken the
// lock, gone back to sleep or given up). Holds back new readers; while it is
// set a release wakes nobody: one woken writer at a time is enough to keep
// the lock going, and more would only fight over it.
constexpr std::uint32_t kWriterWoken = 1u << 5;
// The rest counts readers that are not in a slot.
constexpr std::uint32_t kReaderShift = 6;
constexpr std::uint32_t kOneReader = 1u << kReaderShift;

constexpr std::uint32_t kBlocksReaders = kWriteLocked | kWritersParked | kWriterWoken;
constexpr std::uint32_t kParked = kWritersParked | kReadersParked;

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

// One sleeping thread. It lives on the sleeper's stack; whoever wakes it
// unlinks it under the bucket's mutex, then posts its token, after which it
// may be gone at once.
enum class wait_kind : std::uint8_t { reader, writer, drainer };
constexpr std::uint32_t kAsleep = 0;
constexpr std::uint32_t kRetry = 1;      // woken: look at the lock again
constexpr std::uint32_t kHandedOff = 2;  // woken holding the lock (a fair hand-over)

struct waiter {
  waiter* next = nullptr;
  const void* key = nullptr;
  wait_kind kind = wait_kind::reader;
  std::uint32_t grant = kRetry;  // the token to post, chosen under the bucket's mutex
  std::uint64_t ticket = 0;      // place in line, from the first time it slept; 0 until then
  std::atomic<std::uint32_t> token{kAsleep};
#if !defined(FASTENERS_RW_FUTEX)
  std::mutex mutex;
  std::condition_variable cv;
#endif
};

#if defined(FASTENERS_RW_FUTEX)
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(int), "futex word");
int* futex_word(std::atomic<std::uint32_t>& token) noexcept { return reinterpret_cast<int*>(&token); }

// Waits until the token is posted or the deadline passes; kAsleep on timeout.
std::uint32_t wait_for_token(waiter& w, std::chrono::steady_clock::time_point deadline) noexcept {
  for (;;) {
    const std::uint32_t token = w.token.load(std::memory_order_acquire);
    if (token != kAsleep) return token;
    if (deadline == std::chrono::steady_clock::time_point::max()) {
      syscall(SYS_futex, futex_word(w.token), FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
      continue;
    }
    // steady_clock is CLOCK_MONOTONIC, what FUTEX_WAIT_BITSET measures an absolute deadline in.
    const auto since_epoch = deadline.time_since_epoch();
    if (since_epoch <= std::chrono::steady_clock::now().time_since_epoch()) return kAsleep;
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    timespec at{};
    at.tv_sec = static_cast<time_t>(seconds.count());
    at.tv_nsec = static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds).count());
    syscall(SYS_futex, futex_word(w.token), FUTEX_WAIT_BITSET_PRIVATE, 0, &at, nullptr, FUTEX_BITSET_MATCH_ANY);
  }
}

// The waiter may be gone as soon as the token is stored; waking a futex
// word that is no longer one is harmless (the kernel only hashes the address).
void post_token(waiter* w, std::uint32_t token) noexcept {
  int* const word = futex_word(w->token);
  w->token.store(token, std::memory_order_release);
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}
#else
// Elsewhere (Windows, macOS) a mutex and condition variable per sleeper: the
// waiter leaves only after seeing the token under its mutex, so it stays
// alive until the poster lets go of that mutex.
std::uint32_t wait_for_token(waiter& w, std::chrono::steady_clock::time_point deadline) noexcept {
  std::unique_lock<std::mutex> guard(w.mutex);
  while (w.token.load(std::memory_order_acquire) == kAsleep) {
    if (deadline == std::chrono::steady_clock::time_point::max()) {
      w.cv.wait(guard);
    } else if (deadline <= std::chrono::steady_clock::now() ||  // wait_until(min()) overflows on mingw-w64
               w.cv.wait_until(guard, deadline) == std::cv_status::timeout) {
      break;
    }
  }
  return w.token.load(std::memory_order_acquire);
}

void post_token(waiter* w, std::uint32_t token) noexcept {
  std::lock_guard<std::mutex> guard(w->mutex);
  w->token.store(token, std::memory_order_release);
  w->cv.notify_one();
}
#endif

class FASTENERS_CAPABILITY("mutex") bucket_mutex {
 public:
  void lock() FASTENERS_ACQUIRE() { mutex_.lock(); }
  void unlock() FASTENERS_RELEASE() { mutex_.unlock(); }

 private:
  std::mutex mutex_;
};

class FASTENERS_SCOPED_CAPABILITY bucket_guard {
 public:
  explicit bucket_guard(bucket_mutex& m) FASTENERS_ACQUIRE(m) : mutex_(m) { mutex_.lock(); }
  ~bucket_guard() FASTENERS_RELEASE() { mutex_.unlock(); }
  bucket_guard(const bucket_guard&) = delete;
  bucket_guard& operator=(const bucket_guard&) = delete;

 private:
  bucket_mutex& mutex_;
};

// Threads unlinked under the bucket's mutex, woken once it is released.
class wake_list {
 public:
  wake_list() = default;
  wake_list(const wake_list&) = delete;
  wake_list& operator=(const wake_list&) = delete;
  void add(waiter* w, std::uint32_t token) noexcept {
    w->next = nullptr;
    w->grant = token;
    (tail_ != nullptr ? tail_->next : head_) = w;
    tail_ = w;
  }
  ~wake_list() {
    for (waiter* w = head_; w != nullptr;) {
      waiter* const next = w->next;  // read first: once posted, w may be gone
      post_token(w, w->grant);
      w = next;
    }
  }

 private:
  waiter* head_ = nullptr;
  waiter* tail_ = nullptr;
};

// How often, at least, a release hands the lock straight to the thread that
// has waited longest instead of letting whoever is quickest take it: between
// kFairMin and twice that, at random, per bucket (as parking_lot does).
constexpr std::chrono::microseconds kFairMin{500};

// The sleepers of every lock whose address hashes here, in arrival order (a
// thread woken for nothing sleeps again in the place it had).
struct alignas(kSlotAlign) parking_bucket {
  bucket_mutex mutex;
  waiter* head FASTENERS_GUARDED_BY(mutex) = nullptr;
  waiter* tail FASTENERS_GUARDED_BY(mutex) = nullptr;
  std::chrono::steady_clock::time_point fair_at FASTENERS_GUARDED_BY(mutex){};
  std::uint32_t seed FASTENERS_GUARDED_BY(mutex) = 0x9e3779b9u;
  std::uint64_t next_ticket FASTENERS_GUARDED_BY(mutex) = 1;

  // Queues w by its ticket: a newcomer at the back, a thread that was woken
  // and must sleep again back where it stood.
  void insert(waiter* w) FASTENERS_REQUIRES(mutex) {
    if (w->ticket == 0) w->ticket = next_ticket++;
    if (tail == nullptr || tail->ticket < w->ticket) {
      w->next = nullptr;
      (tail != nullptr ? tail->next : head) = w;
      tail = w;
      return;
    }
    waiter** link = &head;
    while ((*link)->ticket < w->ticket) link = &(*link)->next;
    w->next = *link;
    *link = w;
  }
  // Unlinks w if it is queued; false if somebody already took it out.
  bool remove(waiter* w) FASTENERS_REQUIRES(mutex) {
    waiter* previous = nullptr;
    for (waiter* p = head; p != nullptr; previous = p, p = p->next) {
      if (p != w) continue;
      (previous != nullptr ? previous->next : head) = p->next;
      if (tail == p) tail = previous;
      return true;
    }
    return false;
  }
  waiter* find(const void* key, wait_kind kind) FASTENERS_REQUIRES(mutex) {
    for (waiter* p = head; p != nullptr; p = p->next) {
      if (p->key == key && p->kind == kind) return p;
    }
    return nullptr;
  }
  // Unlinks the sleeping readers of `key` into `wake`, to be posted `token`:
  // all of them, or with `up_to_writer` those ahead of its first sleeping
  // writer. One pass; returns how many.
  std::uint32_t take_readers(const void* key, bool up_to_writer, wake_list& wake, std::uint32_t token)
      FASTENERS_REQUIRES(mutex) {
    std::uint32_t taken = 0;
    waiter* previous = nullptr;
    for (waiter* p = head; p != nullptr;) {
      waiter* const next = p->next;
      if (p->key == key && p->kind == wait_kind::writer && up_to_writer) break;
      if (p->key == key && p->kind == wait_kind::reader) {
        (previous != nullptr ? previous->next : head) = next;
        if (tail == p) tail = previous;
        wake.add(p, token);
        ++taken;
      } else {
        previous = p;
      }
      p = next;
    }
    return taken;
  }
  // True once per kFairMin..2*kFairMin: this release should be a fair hand-over.
  bool fair_due() FASTENERS_REQUIRES(mutex) {
    const auto now = std::chrono::steady_clock::now();
    if (now < fair_at) return false;
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    fair_at = now + kFairMin + std::chrono::microseconds(seed % static_cast<std::uint32_t>(kFairMin.count()));
    return true;
  }
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
// A deadline meaning "one attempt, no waiting at all" (try_lock).
constexpr auto kOneTry = std::chrono::steady_clock::time_point::min();

// How long a reader held back by a writer, a writer draining readers, or a
// woken writer spins before it sleeps: about a microsecond. Not longer, and
// a writer that finds another writer inside does not spin at all: where
// threads outnumber cores the spinner takes the CPU that the holder needs,
// and where they do not, two writers that spin hand the lock back and forth
// between cores on every acquisition (a cache miss each time) instead of one
// running on at full speed while the other sleeps; std::shared_mutex does not
// spin either, and measured on two cores every spin made writes slower.
constexpr std::uint32_t kSpins = 32;

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
  const std::uint32_t held = r.held_count;
  for (std::uint32_t i = 0; i < held; ++i) {
    if (r.held[i].lock == this) {
      ++r.held[i].count;
      return;
    }
  }
  std::uint32_t state = state_.load(std::memory_order_relaxed);
  // No reader inside and none since the last writer: count ourselves in the
  // state word, as std::shared_mutex does; slots pay off only once readers
  // overlap. Everything else is out of line, so that this path needs no
  // stack frame.
  if (held < kInlineHeld && !r.spilled && (state & ~kReadersParked) == 0 &&
      state_.compare_exchange_strong(state, state + kOneReader, std::memory_order_acquire, std::memory_order_relaxed)) {
    r.held[held] = held_read{this, 1, kCounted};
    r.held_count = held + 1;
    return;
  }
  lock_shared_not_alone(state);
}

// Readers overlap (or a writer is about): the thread's home slot, else the
// general path.
#if defined(__GNUC__)
__attribute__((noinline))
#endif
void reader_writer_lock::lock_shared_not_alone(std::uint32_t state) FASTENERS_NO_THREAD_SAFETY_ANALYSIS {
  thread_record& r = t_record;
  if (r.held_count < kInlineHeld && !r.spilled && r.home_plus_one != 0 &&
      (state & (kBlocksReaders | kSlotsInUse)) == kSlotsInUse) {
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
      if (!slot.compare_exchange_strong(expected, nullptr)) release_counted_reader();
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
  std::int32_t where = enter_shared();
  // A writer holds the lock (and none waits behind it): spin a little, as it may be gone soon.
  for (std::uint32_t spin = 0; where == kFailed && wait && spin < kSpins; ++spin) {
    cpu_relax();
    const std::uint32_t state = state_.load(std::memory_order_relaxed);
    if (state & (kWritersParked | kWriterWoken)) break;
    if (!(state & kBlocksReaders)) where = enter_shared();
  }
  if (where == kFailed && wait) where = lock_shared_slow(deadline);
  if (where == kFailed) {
    remove_held(h);
    return false;
  }
  h->where = where;
  return true;
}

// Registers the calling thread as a reader unless a writer is in the way.
std::int32_t reader_writer_lock::enter_shared() noexcept {
  thread_record& r = t_record;
  std::uint32_t state = state_.load(std::memory_order_relaxed);
  if (state & kBlocksReaders) return kFailed;
  // Alone: counted, in the state word. A reader that meets another (or
  // loses a race for the word) turns on the slots for everyone, until the
  // next writer turns them off again.
  if (!(state & kSlotsInUse) && counted_readers(state) == 0 &&
      state_.compare_exchange_strong(state, state + kOneReader, std::memory_order_acquire, std::memory_order_relaxed)) {
    return kCounted;
  }
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
    if (!slot.compare_exchange_strong(expected, nullptr)) release_counted_reader();
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
  waiter me;
  me.key = this;
  me.kind = wait_kind::reader;
  for (;;) {
    const std::int32_t where = enter_shared();
    if (where != kFailed) return where;
    {
      bucket_guard guard(bucket.mutex);
      // Sleep only while a writer is in the way, telling it so first.
      std::uint32_t state = state_.load(std::memory_order_relaxed);
      bool blocked = false;
      while ((state & kBlocksReaders) && !blocked) {
        blocked = state_.compare_exchange_weak(state, state | kReadersParked, std::memory_order_relaxed);
      }
      if (!blocked) continue;
      me.token.store(kAsleep, std::memory_order_relaxed);
      bucket.insert(&me);
    }
    std::uint32_t token = wait_for_token(me, deadline);
    if (token == kAsleep) {
      {
        bucket_guard guard(bucket.mutex);
        if (bucket.remove(&me)) return enter_shared();
      }
      // Somebody has just woken us: the token is on its way.
      token = wait_for_token(me, kForever);
    }
    if (token == kHandedOff) return kCounted;
    if (deadline != kForever && std::chrono::steady_clock::now() >= deadline) return enter_shared();
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
  std::uint32_t state = state_.load(std::memory_order_relaxed);
  if (!(state & kDrainerParked) &&
      state_.compare_exchange_strong(state, state - kOneReader, std::memory_order_release, std::memory_order_relaxed)) {
    return;
  }
  release_counted_reader();
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
  release_counted_reader();
}

// The last counted reader out wakes a writer waiting for readers to leave.
void reader_writer_lock::release_counted_reader() noexcept {
  std::uint32_t state = state_.load(std::memory_order_relaxed);
  std::uint32_t next;
  do {
    next = state - kOneReader;
    if (counted_readers(state) == 1) next &= ~kDrainerParked;
  } while (!state_.compare_exchange_weak(state, next, std::memory_order_acq_rel, std::memory_order_relaxed));
  if (counted_readers(state) != 1 || !(state & kDrainerParked)) return;
  // From here on `this` may already be gone: only its address is used.
  parking_bucket& bucket = bucket_of(this);
  wake_list wake;
  bucket_guard guard(bucket.mutex);
  if (waiter* w = bucket.find(this, wait_kind::drainer)) {
    bucket.remove(w);
    wake.add(w, kRetry);
  }
}

// --- Write side -------------------------------------------------------------

// The common case first: nobody holds it, no reader has been in since the
// last writer, and the calling thread reads no lock at all (so it is not a
// reader of this one).
void reader_writer_lock::lock() FASTENERS_NO_THREAD_SAFETY_ANALYSIS {
  const thread_record& r = t_record;
  std::uint32_t state = state_.load(std::memory_order_relaxed);
  if ((state & ~(kParked | kWriterWoken)) == 0 && r.held_count == 0 && !r.spilled &&
      state_.compare_exchange_strong(state, state | kWriteLocked, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
    writer_.store(self(), std::memory_order_relaxed);
    write_depth_ = 1;
    return;
  }
  lock_exclusive(kForever, true);
}

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
  std::uint32_t state = state_.load(std::memory_order_relaxed);
  if (!wait) {
    // One attempt: nobody holds it or waits for it.
    while (!(state & kBlocksReaders) && counted_readers(state) == 0) {
      if (state_.compare_exchange_weak(state, state | kWriteLocked)) return finish_claim(state, kOneTry);
    }
    return false;
  }
  // Claim the lock whenever no writer has it (readers inside are drained
  // afterwards, and none can come in once it is claimed).
  while (!(state & kWriteLocked)) {
    if (state_.compare_exchange_weak(state, state | kWriteLocked)) return finish_claim(state, deadline);
  }
  return lock_exclusive_slow(deadline);
}

bool reader_writer_lock::lock_exclusive_slow(std::chrono::steady_clock::time_point deadline) {
  parking_bucket& bucket = bucket_of(this);
  waiter me;
  me.key = this;
  me.kind = wait_kind::writer;
  // Woken with kRetry: kWriterWoken is set for this writer, which clears it
  // when it takes the lock, sleeps again or gives up.
  bool woken = false;
  for (;;) {
    std::uint32_t state = state_.load(std::memory_order_relaxed);
    for (std::uint32_t spin = 0; woken && (state & kWriteLocked) && spin < kSpins; ++spin) {
      cpu_relax();
      state = state_.load(std::memory_order_relaxed);
    }
    const std::uint32_t mine = woken ? kWriterWoken : 0u;
    while (!(state & kWriteLocked)) {
      if (state_.compare_exchange_weak(state, (state | kWriteLocked) & ~mine)) return finish_claim(state, deadline);
    }
    {
      bucket_guard guard(bucket.mutex);
      // Sleep only while a writer has it, saying so (which also holds back new readers).
      state = state_.load(std::memory_order_relaxed);
      bool blocked = false;
      while ((state & kWriteLocked) && !blocked) {
        blocked = state_.compare_exchange_weak(state, (state | kWritersParked) & ~mine, std::memory_order_relaxed);
      }
      if (!blocked) continue;
      woken = false;
      me.token.store(kAsleep, std::memory_order_relaxed);
      bucket.insert(&me);
    }
    std::uint32_t token = wait_for_token(me, deadline);
    if (token == kAsleep) {
      bool queued;
      {
        bucket_guard guard(bucket.mutex);
        queued = bucket.remove(&me);
      }
      if (queued) {
        // Others may have waited only because of this writer.
        settle_waiters(false);
        return false;
      }
      token = wait_for_token(me, kForever);
    }
    if (token == kHandedOff) {
      // The last writer kept the lock locked for us: there are no readers.
      writer_.store(self(), std::memory_order_relaxed);
      write_depth_ = 1;
      return true;
    }
    woken = true;
    if (deadline != kForever && std::chrono::steady_clock::now() >= deadline) {
      state = state_.load(std::memory_order_relaxed);
      while (!(state & kWriteLocked)) {
        if (state_.compare_exchange_weak(state, (state | kWriteLocked) & ~kWriterWoken)) {
          return finish_claim(state, deadline);
        }
      }
      settle_waiters(true);
      return false;
    }
  }
}

// The claim is made (kWriteLocked set, from `claimed_from`): wait for the
// readers still inside, then own the lock.
bool reader_writer_lock::finish_claim(std::uint32_t claimed_from, std::chrono::steady_clock::time_point deadline) {
  // Counted readers cannot come in after the claim, so without slot readers
  // and counted ones there is nobody to wait for.
  if (claimed_from & kSlotsInUse) move_slot_readers_to_count();
  if (counted_readers(state_.load(std::memory_order_acquire)) != 0 && !drain_readers(deadline)) {
    abandon_claim();
    return false;
  }
  writer_.store(self(), std::memory_order_relaxed);
  write_depth_ = 1;
  return true;
}

// With the claim made, waits until no counted reader is left.
bool reader_writer_lock::drain_readers(std::chrono::steady_clock::time_point deadline) {
  if (deadline == kOneTry) return counted_readers(state_.load(std::memory_order_acquire)) == 0;
  for (std::uint32_t spin = 0; spin < kSpins; ++spin) {
    if (counted_readers(state_.load(std::memory_order_acquire)) == 0) return true;
    cpu_relax();
  }
  parking_bucket& bucket = bucket_of(this);
  waiter me;
  me.key = this;
  me.kind = wait_kind::drainer;
  for (;;) {
    {
      bucket_guard guard(bucket.mutex);
      std::uint32_t state = state_.load(std::memory_order_acquire);
      bool blocked = false;
      while (counted_readers(state) != 0 && !blocked) {
        blocked = state_.compare_exchange_weak(state, state | kDrainerParked, std::memory_order_acquire);
      }
      if (!blocked) return true;
      me.token.store(kAsleep, std::memory_order_relaxed);
      bucket.insert(&me);
    }
    if (wait_for_token(me, deadline) == kAsleep) {
      bool queued;
      {
        bucket_guard guard(bucket.mutex);
        queued = bucket.remove(&me);
      }
      if (!queued) wait_for_token(me, kForever);
      return counted_readers(state_.load(std::memory_order_acquire)) == 0;
    }
  }
}

// Gives up a claim that could not be completed.
void reader_writer_lock::abandon_claim() noexcept { release_write(0, false); }

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
  const thread_record& r = t_record;
  if (r.held_count == 0 && !r.spilled) {
    writer_.store(nullptr, std::memory_order_relaxed);
    // release_write's fast path, here so that the common case makes no call.
    std::uint32_t state = state_.load(std::memory_order_relaxed);
    if ((!(state & kParked) || (state & kWriterWoken)) &&
        state_.compare_exchange_strong(state, state & ~(kWriteLocked | kDrainerParked), std::memory_order_release,
                                       std::memory_order_relaxed)) {
      return;
    }
    release_write(0, true);
    return;
  }
  // A writer that still holds a read lock keeps it: it gets a counted
  // registration in the same step that releases the write lock.
  held_read* h = find_held(this);
  writer_.store(nullptr, std::memory_order_relaxed);
  if (h != nullptr) h->where = kCounted;
  release_write(h != nullptr ? kOneReader : 0, h == nullptr);
}

void reader_writer_lock::unlock_and_lock_shared() FASTENERS_NO_THREAD_SAFETY_ANALYSIS {
  if (writer_.load(std::memory_order_relaxed) != self()) {
    throw_error(std::errc::operation_not_permitted,
                "fasteners::reader_writer_lock::unlock_and_lock_shared: the calling thread does not hold the write "
                "lock");
  }
  // A read lock taken under the write lock, then the write lock released:
  // unlock() turns that read lock into a counted reader in the same atomic
  // step that clears kWriteLocked, so no writer gets in between.
  lock_shared_impl(kForever, false);
  unlock();
}

// Lets go of kWriteLocked (adding `readers` to the count in the same step)
// and wakes whoever should go next. `may_hand_over`: nobody reads, so the
// lock may pass straight to a sleeping writer. From the moment kWriteLocked
// is cleared, `this` may be gone: the rest only uses its address.
void reader_writer_lock::release_write(std::uint32_t readers, bool may_hand_over) noexcept {
  std::uint32_t state = state_.load(std::memory_order_relaxed);
  // Nobody asleep, or a woken writer on its way (who will see to the others).
  while (!(state & kParked) || (state & kWriterWoken)) {
    if (state_.compare_exchange_weak(state, (state & ~(kWriteLocked | kDrainerParked)) + readers,
                                     std::memory_order_release, std::memory_order_relaxed)) {
      return;
    }
  }
  parking_bucket& bucket = bucket_of(this);
  wake_list wake;
  bucket_guard guard(bucket.mutex);
  waiter* first = nullptr;
  waiter* first_writer = nullptr;
  bool more_writers = false;
  for (waiter* w = bucket.head; w != nullptr; w = w->next) {
    if (w->key != this || w->kind == wait_kind::drainer) continue;
    if (first == nullptr) first = w;
    if (w->kind == wait_kind::writer) {
      if (first_writer == nullptr) {
        first_writer = w;
      } else {
        more_writers = true;
        break;
      }
    }
  }
  state = state_.load(std::memory_order_relaxed);
  // A writer woken meanwhile (settle_waiters) sees to the others.
  const bool fair = first != nullptr && !(state & kWriterWoken) && bucket.fair_due();
  if (fair && first == first_writer && may_hand_over) {
    // A fair hand-over: the writer that has slept longest gets the lock
    // without it ever being free.
    bucket.remove(first_writer);
    wake.add(first_writer, kHandedOff);
    while (!state_.compare_exchange_weak(
        state, more_writers ? (state & ~kDrainerParked) : (state & ~(kDrainerParked | kWritersParked)),
        std::memory_order_release, std::memory_order_relaxed)) {
    }
    return;
  }
  std::uint32_t handed_readers = 0;
  std::uint32_t set = 0;
  std::uint32_t clear = kWriteLocked | kDrainerParked;
  if (!(state & kWriterWoken)) {
    if (fair || first_writer == nullptr) {
      // Readers go: those ahead of the first writer after a fair turn, else
      // every sleeping reader (no writer sleeps).
      handed_readers = bucket.take_readers(this, true, wake, fair ? kHandedOff : kRetry);
    }
    if (first_writer != nullptr) {
      // A writer goes next (or after the readers handed the lock): it
      // settles kWriterWoken.
      bucket.remove(first_writer);
      wake.add(first_writer, kRetry);
      set |= kWriterWoken;
    }
    if (!more_writers) clear |= kWritersParked;
    if (bucket.find(this, wait_kind::reader) == nullptr) clear |= kReadersParked;
  }
  std::uint32_t next;
  do {
    next = ((state & ~clear) | set) + readers;
    if (fair) next += handed_readers * kOneReader;
  } while (!state_.compare_exchange_weak(state, next, std::memory_order_release, std::memory_order_relaxed));
}

// For a writer that gave up while asleep (`woken` false) or after it was
// woken (true: kWriterWoken is its to clear): kWritersParked is set right
// from the bucket, and if the lock is free, whoever it held back is woken.
void reader_writer_lock::settle_waiters(bool woken) noexcept {
  parking_bucket& bucket = bucket_of(this);
  wake_list wake;
  bucket_guard guard(bucket.mutex);
  waiter* const writer = bucket.find(this, wait_kind::writer);
  std::uint32_t clear = woken ? kWriterWoken : 0u;
  if (writer == nullptr) clear |= kWritersParked;
  std::uint32_t state = state_.fetch_and(~clear, std::memory_order_relaxed) & ~clear;
  // Held: its release wakes whom it must. Another writer woken: it will.
  if (state & (kWriteLocked | kWriterWoken)) return;
  std::uint32_t set = 0;
  clear = 0;
  if (writer != nullptr) {
    bucket.remove(writer);
    wake.add(writer, kRetry);
    set = kWriterWoken;
    if (bucket.find(this, wait_kind::writer) == nullptr) clear = kWritersParked;
  } else if (state & kReadersParked) {
    bucket.take_readers(this, false, wake, kRetry);
    clear = kReadersParked;
  }
  while (!state_.compare_exchange_weak(state, (state & ~clear) | set, std::memory_order_relaxed)) {
  }
}

// --- Questions --------------------------------------------------------------

std::size_t detail::queued_writers(const reader_writer_lock& lock) {
  parking_bucket& bucket = bucket_of(&lock);
  bucket_guard guard(bucket.mutex);
  std::size_t count = 0;
  for (const waiter* w = bucket.head; w != nullptr; w = w->next) {
    if (w->key == &lock && w->kind == wait_kind::writer) ++count;
  }
  return count;
}

bool reader_writer_lock::is_reader() const noexcept { return find_held(this) != nullptr; }

bool reader_writer_lock::is_writer(bool /*check_pending*/) const noexcept {
  return writer_.load(std::memory_order_relaxed) == self();
}

bool reader_writer_lock::has_pending_writers() const noexcept {
  const std::uint32_t state = state_.load();
  if (state & (kWritersParked | kWriterWoken)) return true;
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
