// Torture run for the inter-process locks: P worker processes x T threads take
// one lock file in every way the public API offers, a supervisor kill -9s a
// random worker every 20-200 ms and starts a new one in its place, and these
// detectors watch:
//
//   overlaps      every thread publishes a mark in shared memory while inside
//                 ("reading" or "writing", with its incarnation) and, on the
//                 way in and out, looks at everyone else's: a writer beside
//                 anyone, or a reader beside a writer, is an overlap. The
//                 shared counter must also not change under a reader, nor under
//                 a writer between its read and its write, nor across
//                 unlock_and_lock_shared().
//   lost updates  writers increment a counter in shared memory; each thread
//                 slot counts what it committed. An intent record (who, their
//                 count before, the value about to be written) is published
//                 before the write and cleared after the bookkeeping, so the
//                 next writer can tell a kill between write and bookkeeping
//                 (counter == intended value: credit it) from one before the
//                 write (counter == intended - 1) from a real lost update
//                 (anything else). At the end the counter must equal the sum.
//   hangs         no acquisition by anyone for --hang-after seconds, a call
//                 still running --hang-after seconds past its deadline, or a
//                 worker that does not stop within --hang-after seconds.
//   lateness      how long after its deadline a timed try returned (reported,
//                 not judged: a loaded machine is late by itself).
//   failures      a lock call that throws, a worker that dies unasked or
//                 exits non-zero (a sanitizer report, for instance).
//
// A mark left behind by a killed worker is told apart from a real overlap
// exactly: the supervisor flags a worker as "being killed" in shared memory
// before it sends SIGKILL, so a mark whose owner is not flagged belonged to a
// live thread at the moment it was seen.
//
// Its detectors are proven by deliberately broken runs, which must fail:
//   --broken=overlap  thread 0 of every worker writes without taking the lock
//   --broken=lost     writers read the counter before taking the lock
//   --broken=hang     worker 0 keeps its first write lock until the end and
//                     is never killed
//   --broken=downgrade  unlock_and_lock_shared() done as unlock(), lock_shared()
//                     (works without the real member, so it proves the check
//                     whether or not this build has it)
//
// Usage:
//   fasteners_torture [--processes P] [--threads T] [--seconds S] [--lock-dir DIR]
//                     [--seed N] [--broken=none|overlap|lost|hang|downgrade]
//                     [--hang-after SECONDS] [--late-ms MS]
// A long run is one command (from the build directory):
//   tests/torture/fasteners_torture --processes 8 --threads 4 --seconds 3600 --lock-dir /tmp/fasteners-torture --seed 1
//
// Exit status: 0 only if there were no overlaps, lost updates, hangs or
// failures; otherwise the OR of the detector codes below (1-15), so that a test
// can ask for the one it provoked. 64 usage, 72 setup (shared memory, fork).
// POSIX only: it forks, mmaps and kills.
#include <fasteners/interprocess_lock.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <new>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FASTENERS_TORTURE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FASTENERS_TORTURE_SANITIZED 1
#endif
#endif

#ifndef FASTENERS_TORTURE_BACKEND
#define FASTENERS_TORTURE_BACKEND "unknown"
#endif

namespace {

namespace fs = std::filesystem;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Exit codes of the run. The detector codes are bits, OR-ed together.
constexpr int kExitPass = 0;
constexpr int kExitOverlap = 1;
constexpr int kExitLostUpdate = 2;
constexpr int kExitHang = 4;
constexpr int kExitWorkerFailure = 8;  // a worker died unasked, exited non-zero, or a lock call threw
constexpr int kExitUsage = 64;         // EX_USAGE
constexpr int kExitSetup = 72;         // no shared memory, no fork; above every detector code

// Exit codes of a worker process.
constexpr int kWorkerExitClean = 0;
constexpr int kWorkerExitError = 3;  // could not even set up its threads

#ifdef FASTENERS_TORTURE_SANITIZED
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
// Sanitized builds run every test of the suite at a fraction of the speed;
// a shorter run keeps the suite's time in bounds and still kills dozens.
constexpr double kSanitizerTimeScale = 0.5;
constexpr double kSanitizerMinSeconds = 3;

constexpr int kMaxProcesses = 64;
constexpr int kMaxThreads = 32;
constexpr int kDefaultProcesses = 4;
constexpr int kDefaultThreads = 3;
constexpr double kDefaultSeconds = 30;
constexpr double kDefaultHangAfterSeconds = 20;  // generous: a loaded 2-core machine stalls for seconds
constexpr double kDefaultLateMs = 50;
constexpr milliseconds kMinKillInterval{20};
constexpr milliseconds kMaxKillInterval{200};
constexpr milliseconds kSupervisorTick{5};
constexpr std::chrono::seconds kStatusEvery{60};
constexpr milliseconds kStuckHolderTick{10};
constexpr microseconds kMaxHold{300};   // longest stay inside, so that others queue up
constexpr microseconds kMaxPause{500};  // longest pause between two acquisitions
constexpr milliseconds kMaxTimeout{20};
constexpr int kPercent = 100;
constexpr int kZeroTimeoutPercent = 10;     // a zero timeout is a single try
constexpr int kNegativeTimeoutPercent = 5;  // so is a negative one
constexpr int kYieldOnlyPercent = 50;       // holds that only yield instead of sleeping
constexpr int kRecreateObjectsEvery = 64;   // own-object threads build fresh objects this often
constexpr std::size_t kCacheLine = 64;
constexpr std::size_t kNoteSize = 512;
constexpr double kMicrosPerMilli = 1000.0;
constexpr double kMicrosPerSecond = 1e6;

// Every way the public API takes the lock.
enum class kind : int {
  lock,  // interprocess_lock
  try_lock,
  try_lock_for,
  try_lock_until,  // on system_clock, which the library turns into steady attempts
  rw_lock,         // interprocess_reader_writer_lock, exclusive side
  rw_try_lock,
  rw_try_lock_for,
  lock_shared,
  try_lock_shared,
  try_lock_shared_for,
  downgrade,  // rw lock(), then unlock_and_lock_shared()
};
constexpr int kKinds = static_cast<int>(kind::downgrade) + 1;
constexpr std::array<const char*, kKinds> kKindNames{"lock",
                                                     "try_lock",
                                                     "try_lock_for",
                                                     "try_lock_until",
                                                     "rw lock",
                                                     "rw try_lock",
                                                     "rw try_lock_for",
                                                     "lock_shared",
                                                     "try_lock_shared",
                                                     "try_lock_shared_for",
                                                     "lock+unlock_and_lock_shared"};

constexpr bool is_shared(kind k) {
  return k == kind::lock_shared || k == kind::try_lock_shared || k == kind::try_lock_shared_for;
}
constexpr bool on_rw_object(kind k) { return k >= kind::rw_lock; }
constexpr int index_of(kind k) { return static_cast<int>(k); }

// unlock_and_lock_shared() is being added to the library; use it where it exists.
template <class Lock, class = void>
struct can_downgrade : std::false_type {};
template <class Lock>
struct can_downgrade<Lock, std::void_t<decltype(std::declval<Lock&>().unlock_and_lock_shared())>> : std::true_type {};
constexpr bool kHasDowngrade = can_downgrade<fasteners::interprocess_reader_writer_lock>::value;

template <class Lock>
void downgrade_lock(Lock& lock) {
  if constexpr (can_downgrade<Lock>::value) lock.unlock_and_lock_shared();
}

enum class broken_mode { none, overlap, lost, hang, downgrade };

struct run_config {
  int processes = kDefaultProcesses;
  int threads = kDefaultThreads;
  double seconds = kDefaultSeconds;
  fs::path lock_dir = fs::temp_directory_path() / "fasteners-torture";
  std::uint64_t seed = 0;
  bool seed_given = false;
  broken_mode broken = broken_mode::none;
  double hang_after_seconds = kDefaultHangAfterSeconds;
  double late_ms = kDefaultLateMs;

  fs::path lock_path() const { return lock_dir / "torture.lock"; }
  fs::path shared_memory_path() const { return lock_dir / "torture.shm"; }
  int slots() const { return processes * threads; }
  std::int64_t hang_after_us() const { return static_cast<std::int64_t>(hang_after_seconds * kMicrosPerSecond); }
};

// ---------------------------------------------------------------------------
// Shared memory: one mapping of a small file, set up by the supervisor before
// the first fork. Everything in it is atomic, because the lock that orders it
// is the file lock, which neither the memory model nor ThreadSanitizer sees.

// A thread's mark while inside: (incarnation << kRoleBits) | role; 0 outside.
constexpr std::uint64_t kRoleReading = 1;
constexpr std::uint64_t kRoleWriting = 2;
constexpr int kRoleBits = 2;
constexpr std::uint64_t kRoleMask = (std::uint64_t{1} << kRoleBits) - 1;
// A process slot's life: (incarnation << 1) | kKillingBit once a kill is decided.
constexpr std::uint64_t kKillingBit = 1;

constexpr std::uint64_t running_life(std::uint64_t incarnation) { return incarnation << 1; }

struct alignas(kCacheLine) thread_slot {
  std::atomic<std::uint64_t> inside;
  std::atomic<std::uint64_t> committed;      // increments made from this slot, over all incarnations
  std::atomic<std::int64_t> stuck_after_us;  // while in a lock call: when it becomes a hang; else 0
};

struct alignas(kCacheLine) process_slot {
  std::atomic<std::uint64_t> life;
};

// The counter and the intent record of the write in progress.
struct alignas(kCacheLine) counter_record {
  std::atomic<std::uint64_t> value;
  std::atomic<std::uint64_t> intent_active;
  std::atomic<std::uint64_t> intent_slot;
  std::atomic<std::uint64_t> intent_committed_before;
  std::atomic<std::uint64_t> intent_value;
  std::atomic<std::uint64_t> credited;      // killed after the write, before the bookkeeping
  std::atomic<std::uint64_t> abandoned;     // killed after the intent, before the write
  std::atomic<std::uint64_t> inconsistent;  // neither: an update was lost
};

// The first occurrence of something, in words, for the summary.
struct note {
  static constexpr int kFree = 0;
  static constexpr int kWriting = 1;
  static constexpr int kWritten = 2;
  std::atomic<int> state;
  std::array<char, kNoteSize> text;
};

struct shared_state {
  std::atomic<int> stop;
  std::array<std::atomic<std::uint64_t>, kKinds> acquired;
  std::array<std::atomic<std::uint64_t>, kKinds> busy;
  std::atomic<std::uint64_t> progress;  // acquisitions of any kind, for the watchdog
  std::atomic<std::uint64_t> overlaps;
  std::atomic<std::uint64_t> excused_marks;  // seen marks of workers being killed or dead: no overlap
  std::atomic<std::uint64_t> errors;
  std::atomic<std::uint64_t> late_tries;
  std::atomic<std::uint64_t> timed_tries;
  std::atomic<std::uint64_t> max_readers;
  std::atomic<std::int64_t> worst_lateness_us;
  counter_record counter;
  note first_overlap;
  note first_error;
  note first_lost_update;
  std::array<process_slot, kMaxProcesses> processes;
  std::array<thread_slot, static_cast<std::size_t>(kMaxProcesses) * kMaxThreads> threads;
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared-memory atomics must be address-free");
static_assert(std::atomic<std::int64_t>::is_always_lock_free, "shared-memory atomics must be address-free");
static_assert(std::atomic<int>::is_always_lock_free, "shared-memory atomics must be address-free");

void write_note(note& n, const std::string& text) {
  int expected = note::kFree;
  if (!n.state.compare_exchange_strong(expected, note::kWriting)) return;
  const std::size_t length = std::min(text.size(), n.text.size() - 1);
  std::memcpy(n.text.data(), text.data(), length);
  n.text[length] = '\0';
  n.state.store(note::kWritten);
}

std::string seconds_text(double seconds) {
  std::ostringstream text;
  text << seconds << " s";
  return text.str();
}

std::string read_note(const note& n) { return n.state.load() == note::kWritten ? std::string(n.text.data()) : ""; }

template <class T>
void store_max(std::atomic<T>& target, T value) {
  T seen = target.load();
  while (value > seen && !target.compare_exchange_weak(seen, value)) {
  }
}

// One seed per thread and incarnation (splitmix64's finaliser), so that a
// restarted worker does not replay its predecessor's choices.
std::uint64_t mix(std::uint64_t seed, std::uint64_t incarnation, std::uint64_t thread) {
  constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15;
  constexpr std::uint64_t kMul1 = 0xbf58476d1ce4e5b9;
  constexpr std::uint64_t kMul2 = 0x94d049bb133111eb;
  constexpr int kShift1 = 30;
  constexpr int kShift2 = 27;
  constexpr int kShift3 = 31;
  std::uint64_t z = seed;
  for (const std::uint64_t part : {incarnation, thread}) {
    z += kGolden + part;
    z = (z ^ (z >> kShift1)) * kMul1;
    z = (z ^ (z >> kShift2)) * kMul2;
    z ^= z >> kShift3;
  }
  return z;
}

// CLOCK_MONOTONIC: one clock for every process on the machine.
std::int64_t now_us() {
  return std::chrono::duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

shared_state* map_shared_state(const run_config& config) {
  const std::string path = config.shared_memory_path().string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, S_IRUSR | S_IWUSR);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot create " + path);
  if (::ftruncate(fd, static_cast<off_t>(sizeof(shared_state))) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::system_error(error, std::generic_category(), "cannot size " + path);
  }
  void* memory = ::mmap(nullptr, sizeof(shared_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int error = errno;
  ::close(fd);  // the mapping keeps the file
  if (memory == MAP_FAILED) throw std::system_error(error, std::generic_category(), "cannot map " + path);
  return new (memory) shared_state{};
}

// Settles the intent record a killed writer left behind. Called by the next
// writer, with the write lock held, and by the supervisor once all are gone.
void settle_intent(shared_state& state) {
  counter_record& c = state.counter;
  if (c.intent_active.load() == 0) return;
  const std::uint64_t slot = c.intent_slot.load();
  const std::uint64_t before = c.intent_committed_before.load();
  const std::uint64_t intended = c.intent_value.load();
  const std::uint64_t value = c.value.load();
  thread_slot& owner = state.threads[slot % state.threads.size()];
  const std::uint64_t committed = owner.committed.load();
  if (committed == before + 1) {
    // Killed after its bookkeeping, before clearing the intent: all counted.
  } else if (committed == before && value == intended) {
    owner.committed.store(before + 1);
    c.credited.fetch_add(1);
  } else if (committed == before && value + 1 == intended) {
    c.abandoned.fetch_add(1);
  } else {
    c.inconsistent.fetch_add(1);
    std::ostringstream text;
    text << "intent of slot " << slot << " (committed " << before << ", writing " << intended
         << ") matches neither the counter (" << value << ") nor its count (" << committed << ")";
    write_note(state.first_lost_update, text.str());
  }
  c.intent_active.store(0);
}

// ---------------------------------------------------------------------------
// A worker thread.

class worker_thread {
 public:
  worker_thread(const run_config& config, shared_state& state, int process, int thread, std::uint64_t incarnation,
                fasteners::interprocess_lock& process_lock, fasteners::interprocess_reader_writer_lock& process_rw)
      : config_(config),
        state_(state),
        process_(process),
        thread_(thread),
        slot_index_(process * config.threads + thread),
        incarnation_(incarnation),
        slot_(state.threads[static_cast<std::size_t>(slot_index_)]),
        // Even threads share the process's objects; odd ones have their own.
        own_objects_(thread % 2 == 1),
        process_lock_(process_lock),
        process_rw_(process_rw),
        random_(mix(config.seed, incarnation, static_cast<std::uint64_t>(thread))) {
    for (int k = 0; k < kKinds; ++k) {
      if (static_cast<kind>(k) == kind::downgrade && !kHasDowngrade && config.broken != broken_mode::downgrade) {
        continue;  // the member is not in this build
      }
      menu_.push_back(static_cast<kind>(k));
      // Shared kinds twice, so that readers meet each other.
      if (is_shared(static_cast<kind>(k))) menu_.push_back(static_cast<kind>(k));
    }
  }

  void run() {
    for (std::uint64_t round = 0; state_.stop.load() == 0; ++round) {
      if (own_objects_ && round % kRecreateObjectsEvery == 0) {
        own_lock_.reset();
        own_rw_.reset();
        own_lock_.emplace(config_.lock_path());
        own_rw_.emplace(config_.lock_path());
      }
      const kind k = menu_[pick(menu_.size())];
      try {
        one_acquisition(k);
      } catch (const std::exception& e) {
        state_.errors.fetch_add(1);
        write_note(state_.first_error,
                   std::string(kKindNames[static_cast<std::size_t>(index_of(k))]) + ": " + e.what());
      }
      std::this_thread::sleep_for(microseconds(pick(static_cast<std::size_t>(kMaxPause.count()))));
    }
  }

 private:
  fasteners::interprocess_lock& exclusive_lock() { return own_objects_ ? *own_lock_ : process_lock_; }
  fasteners::interprocess_reader_writer_lock& rw_lock() { return own_objects_ ? *own_rw_ : process_rw_; }

  std::size_t pick(std::size_t bound) { return std::uniform_int_distribution<std::size_t>(0, bound - 1)(random_); }

  microseconds random_timeout() {
    const auto roll = static_cast<int>(pick(kPercent));
    if (roll < kZeroTimeoutPercent) return microseconds(0);
    if (roll < kZeroTimeoutPercent + kNegativeTimeoutPercent) return -milliseconds(1);
    return microseconds(1 + pick(static_cast<std::size_t>(microseconds(kMaxTimeout).count())));
  }

  // Runs a lock call with the watchdog told when it turns into a hang.
  template <class Call>
  bool watched(microseconds timeout, Call&& call) {
    const std::int64_t started = now_us();
    slot_.stuck_after_us.store(started + std::max<std::int64_t>(timeout.count(), 0) + config_.hang_after_us());
    const bool got = call();
    slot_.stuck_after_us.store(0);
    return got;
  }

  template <class Call>
  bool timed(microseconds timeout, Call&& call) {
    const std::int64_t deadline = now_us() + std::max<std::int64_t>(timeout.count(), 0);
    const bool got = watched(timeout, std::forward<Call>(call));
    const std::int64_t late = now_us() - deadline;
    state_.timed_tries.fetch_add(1);
    if (late > 0) {
      store_max(state_.worst_lateness_us, late);
      if (static_cast<double>(late) > config_.late_ms * kMicrosPerMilli) state_.late_tries.fetch_add(1);
    }
    return got;
  }

  bool acquire(kind k) {
    auto& x = exclusive_lock();
    auto& rw = rw_lock();
    const microseconds none{0};
    switch (k) {
      case kind::lock:
        return watched(none, [&] { return x.lock(), true; });
      case kind::try_lock:
        return watched(none, [&] { return x.try_lock(); });
      case kind::try_lock_for: {
        const auto t = random_timeout();
        return timed(t, [&] { return x.try_lock_for(t); });
      }
      case kind::try_lock_until: {
        const auto t = random_timeout();
        return timed(t, [&] { return x.try_lock_until(std::chrono::system_clock::now() + t); });
      }
      case kind::rw_lock:
      case kind::downgrade:
        return watched(none, [&] { return rw.lock(), true; });
      case kind::rw_try_lock:
        return watched(none, [&] { return rw.try_lock(); });
      case kind::rw_try_lock_for: {
        const auto t = random_timeout();
        return timed(t, [&] { return rw.try_lock_for(t); });
      }
      case kind::lock_shared:
        return watched(none, [&] { return rw.lock_shared(), true; });
      case kind::try_lock_shared:
        return watched(none, [&] { return rw.try_lock_shared(); });
      case kind::try_lock_shared_for: {
        const auto t = random_timeout();
        return timed(t, [&] { return rw.try_lock_shared_for(t); });
      }
    }
    return false;
  }

  void one_acquisition(kind k) {
    const auto i = static_cast<std::size_t>(index_of(k));
    // --broken=overlap: some writers take no lock at all (a downgrade needs one to convert).
    const bool skip_lock =
        config_.broken == broken_mode::overlap && thread_ == 0 && !is_shared(k) && k != kind::downgrade;
    // --broken=lost: the value to increment is read before the lock is held.
    std::optional<std::uint64_t> stale;
    if (config_.broken == broken_mode::lost && !is_shared(k)) stale = state_.counter.value.load();

    if (!skip_lock && !acquire(k)) {
      state_.busy[i].fetch_add(1);
      return;
    }
    state_.acquired[i].fetch_add(1);
    state_.progress.fetch_add(1);

    if (is_shared(k)) {
      read_section();
      rw_lock().unlock_shared();
      return;
    }
    const std::uint64_t written = write_section(stale);
    if (k == kind::downgrade) {
      // Look like a reader before the kernel lets other readers in.
      check_others(kRoleWriting);
      slot_.inside.store(mark(kRoleReading));
      if (config_.broken == broken_mode::downgrade) {
        watched(microseconds(0), [&] { return rw_lock().unlock(), rw_lock().lock_shared(), true; });
      } else {
        watched(microseconds(0), [&] { return downgrade_lock(rw_lock()), true; });
      }
      check_others(kRoleReading);
      if (state_.counter.value.load() != written) overlap("a writer got in during unlock_and_lock_shared()");
      hold();
      leave(kRoleReading);
      rw_lock().unlock_shared();
      return;
    }
    if (config_.broken == broken_mode::hang && process_ == 0 && thread_ == 0 && !hung_) {
      hung_ = true;  // keep the lock: nobody else gets anywhere
      while (state_.stop.load() == 0) std::this_thread::sleep_for(kStuckHolderTick);
    }
    leave(kRoleWriting);
    if (skip_lock) return;
    if (on_rw_object(k)) {
      rw_lock().unlock();
    } else {
      exclusive_lock().unlock();
    }
  }

  std::uint64_t mark(std::uint64_t role) const { return (incarnation_ << kRoleBits) | role; }

  void enter(std::uint64_t role) {
    slot_.inside.store(mark(role));
    check_others(role);
  }
  void leave(std::uint64_t role) {
    check_others(role);
    slot_.inside.store(0);
  }

  // Both sides publish their mark before they look (sequentially consistent),
  // so of two threads inside together at least one sees the other.
  void check_others(std::uint64_t role) {
    std::uint64_t readers = role == kRoleReading ? 1 : 0;
    for (int j = 0; j < config_.slots(); ++j) {
      if (j == slot_index_) continue;
      const std::uint64_t theirs = state_.threads[static_cast<std::size_t>(j)].inside.load();
      if (theirs == 0) continue;
      // Read after the mark: if its owner is not flagged for killing now, it
      // was alive, and inside, when the mark was read.
      const std::uint64_t life = state_.processes[static_cast<std::size_t>(j / config_.threads)].life.load();
      const bool alive = life == running_life(theirs >> kRoleBits);
      if (role == kRoleReading && (theirs & kRoleMask) == kRoleReading) {
        if (alive) ++readers;
        continue;
      }
      if (!alive) {
        state_.excused_marks.fetch_add(1);
        continue;
      }
      std::ostringstream text;
      text << (role == kRoleWriting ? "writer" : "reader") << " in slot " << slot_index_ << " saw a "
           << ((theirs & kRoleMask) == kRoleWriting ? "writer" : "reader") << " in slot " << j << " (incarnation "
           << (theirs >> kRoleBits) << ")";
      overlap(text.str());
    }
    store_max(state_.max_readers, readers);
  }

  void overlap(const std::string& what) {
    state_.overlaps.fetch_add(1);
    write_note(state_.first_overlap, what);
  }

  void hold() {
    if (static_cast<int>(pick(kPercent)) < kYieldOnlyPercent) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(microseconds(pick(static_cast<std::size_t>(kMaxHold.count()))));
    }
  }

  void read_section() {
    enter(kRoleReading);
    const std::uint64_t seen = state_.counter.value.load();
    hold();
    if (state_.counter.value.load() != seen) overlap("the counter changed under a reader");
    leave(kRoleReading);
  }

  // Returns the value written; leaves the writing mark in place.
  std::uint64_t write_section(std::optional<std::uint64_t> stale) {
    counter_record& c = state_.counter;
    enter(kRoleWriting);
    settle_intent(state_);
    const std::uint64_t seen = c.value.load();
    const std::uint64_t before = stale.value_or(seen);
    const std::uint64_t committed = slot_.committed.load();
    c.intent_slot.store(static_cast<std::uint64_t>(slot_index_));
    c.intent_committed_before.store(committed);
    c.intent_value.store(before + 1);
    c.intent_active.store(1);
    hold();
    if (c.value.load() != seen) overlap("the counter changed under a writer");
    c.value.store(before + 1);
    hold();  // room for a kill between the write and its bookkeeping
    slot_.committed.store(committed + 1);
    c.intent_active.store(0);
    return before + 1;
  }

  const run_config& config_;
  shared_state& state_;
  const int process_;
  const int thread_;
  const int slot_index_;
  const std::uint64_t incarnation_;
  thread_slot& slot_;
  const bool own_objects_;
  fasteners::interprocess_lock& process_lock_;
  fasteners::interprocess_reader_writer_lock& process_rw_;
  std::optional<fasteners::interprocess_lock> own_lock_;
  std::optional<fasteners::interprocess_reader_writer_lock> own_rw_;
  std::mt19937_64 random_;
  std::vector<kind> menu_;
  bool hung_ = false;
};

[[noreturn]] void run_worker(const run_config& config, shared_state& state, int process, std::uint64_t incarnation) {
  int code = kWorkerExitClean;
  try {
    fasteners::interprocess_lock process_lock(config.lock_path());
    fasteners::interprocess_reader_writer_lock process_rw(config.lock_path());
    std::vector<std::thread> threads;
    for (int t = 0; t < config.threads; ++t) {
      threads.emplace_back(
          [&, t] { worker_thread(config, state, process, t, incarnation, process_lock, process_rw).run(); });
    }
    for (auto& t : threads) t.join();
  } catch (const std::exception& e) {
    write_note(state.first_error, std::string("worker setup: ") + e.what());
    code = kWorkerExitError;
  }
  // exit(), not _exit(): sanitizers report (and set the status) at exit.
  std::exit(code);
}

// ---------------------------------------------------------------------------
// The supervisor: single-threaded, so that fork() is safe; it never touches a lock.

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("died of signal ") + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

class supervisor {
 public:
  supervisor(const run_config& config, shared_state& state)
      : config_(config),
        state_(state),
        random_(config.seed),
        pids_(static_cast<std::size_t>(config.processes), -1),
        incarnations_(static_cast<std::size_t>(config.processes), 0),
        flagged_stuck_(static_cast<std::size_t>(config.slots()), 0) {}

  int run() {
    const auto started = steady_clock::now();
    const auto end =
        started + std::chrono::duration_cast<steady_clock::duration>(std::chrono::duration<double>(config_.seconds));
    try {
      for (int p = 0; p < config_.processes; ++p) start(p);
      last_progress_ = state_.progress.load();
      last_progress_at_ = steady_clock::now();
      auto next_kill = steady_clock::now() + kill_interval();
      auto next_status = started + kStatusEvery;
      while (steady_clock::now() < end) {
        std::this_thread::sleep_for(kSupervisorTick);
        reap_unasked(true);
        if (watchdog()) break;
        if (steady_clock::now() >= next_status && end - steady_clock::now() > kStatusEvery / 2) {
          print_status(started);
          next_status += kStatusEvery;
        }
        if (steady_clock::now() >= next_kill) {
          if (const auto victim = pick_victim()) {
            kill_and_restart(*victim);
            ++kills_;
          }
          next_kill = steady_clock::now() + kill_interval();
        }
      }
    } catch (...) {
      // No fork: leave no worker behind.
      for (int p = 0; p < config_.processes; ++p) {
        if (pids_[static_cast<std::size_t>(p)] >= 0) kill_worker(p);
      }
      throw;
    }
    shutdown();
    elapsed_ = std::chrono::duration<double>(steady_clock::now() - started).count();
    settle_intent(state_);
    return report();
  }

 private:
  steady_clock::duration kill_interval() {
    const auto ms =
        std::uniform_int_distribution<std::int64_t>(kMinKillInterval.count(), kMaxKillInterval.count())(random_);
    return milliseconds(ms);
  }

  // Long runs say how they are doing; the verdict on lost updates waits for the end.
  void print_status(steady_clock::time_point started) const {
    std::cout << "after " << std::chrono::duration_cast<std::chrono::seconds>(steady_clock::now() - started).count()
              << " s: acquisitions=" << state_.progress.load() << " kills=" << kills_
              << " overlaps=" << state_.overlaps.load() << " hangs=" << hangs_ << " errors=" << state_.errors.load()
              << std::endl;
  }

  std::optional<int> pick_victim() {
    // --broken=hang: worker 0 holds the lock for ever and must not be freed by a kill.
    const int first = config_.broken == broken_mode::hang ? 1 : 0;
    if (first >= config_.processes) return std::nullopt;
    return std::uniform_int_distribution<int>(first, config_.processes - 1)(random_);
  }

  process_slot& life_of(int p) { return state_.processes[static_cast<std::size_t>(p)]; }

  void start(int p) {
    const std::uint64_t incarnation = next_incarnation_++;
    for (int t = 0; t < config_.threads; ++t) {
      thread_slot& slot = state_.threads[static_cast<std::size_t>(p * config_.threads + t)];
      slot.inside.store(0);
      slot.stuck_after_us.store(0);
    }
    life_of(p).life.store(running_life(incarnation));
    std::cout.flush();
    std::cerr.flush();
    const pid_t pid = ::fork();
    if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid == 0) run_worker(config_, state_, p, incarnation);
    pids_[static_cast<std::size_t>(p)] = pid;
    incarnations_[static_cast<std::size_t>(p)] = incarnation;
  }

  // Flags the worker before killing it: see check_others().
  void kill_worker(int p) {
    const pid_t pid = pids_[static_cast<std::size_t>(p)];
    life_of(p).life.store(running_life(incarnations_[static_cast<std::size_t>(p)]) | kKillingBit);
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pids_[static_cast<std::size_t>(p)] = -1;
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) worker_failed(p, status);
  }

  void kill_and_restart(int p) {
    kill_worker(p);
    start(p);
  }

  void worker_failed(int p, int status) {
    ++unasked_deaths_;
    std::ostringstream text;
    text << "worker " << p << " (incarnation " << incarnations_[static_cast<std::size_t>(p)] << ") "
         << describe_status(status);
    if (first_death_.empty()) first_death_ = text.str();
  }

  std::optional<int> process_of(pid_t pid) const {
    for (std::size_t p = 0; p < pids_.size(); ++p) {
      if (pids_[p] == pid) return static_cast<int>(p);
    }
    return std::nullopt;
  }

  // Workers only end when told to or killed; anything else is a failure.
  void reap_unasked(bool restart) {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      const auto p = process_of(pid);
      if (!p) continue;
      pids_[static_cast<std::size_t>(*p)] = -1;
      const bool clean_stop = state_.stop.load() != 0 && WIFEXITED(status) && WEXITSTATUS(status) == kWorkerExitClean;
      if (!clean_stop) worker_failed(*p, status);
      life_of(*p).life.store(running_life(incarnations_[static_cast<std::size_t>(*p)]) | kKillingBit);
      if (restart) start(*p);
    }
  }

  bool watchdog() {
    const auto now = steady_clock::now();
    const std::uint64_t progress = state_.progress.load();
    if (progress != last_progress_) {
      last_progress_ = progress;
      last_progress_at_ = now;
    } else if (now - last_progress_at_ > std::chrono::duration<double>(config_.hang_after_seconds)) {
      ++hangs_;
      hang_note("no acquisition by anyone for " + seconds_text(config_.hang_after_seconds));
      dump_slots();
      return true;
    }
    const std::int64_t now_micros = now_us();
    for (int p = 0; p < config_.processes; ++p) {
      if (pids_[static_cast<std::size_t>(p)] < 0) continue;
      for (int t = 0; t < config_.threads; ++t) {
        const auto s = static_cast<std::size_t>(p * config_.threads + t);
        const std::int64_t stuck_after = state_.threads[s].stuck_after_us.load();
        if (stuck_after == 0 || now_micros <= stuck_after || flagged_stuck_[s] == stuck_after) continue;
        flagged_stuck_[s] = stuck_after;
        ++hangs_;
        hang_note("slot " + std::to_string(s) + ": a lock call is " + seconds_text(config_.hang_after_seconds) +
                  " past its deadline");
      }
    }
    return false;
  }

  void hang_note(const std::string& what) {
    if (first_hang_.empty()) first_hang_ = what;
  }

  void dump_slots() const {
    std::cout << "hang: state of every slot (mark = incarnation:role, 1 reading, 2 writing)\n";
    const std::int64_t now_micros = now_us();
    for (int s = 0; s < config_.slots(); ++s) {
      const thread_slot& slot = state_.threads[static_cast<std::size_t>(s)];
      const std::uint64_t inside = slot.inside.load();
      const std::int64_t stuck_after = slot.stuck_after_us.load();
      std::cout << "  slot " << s << " worker " << s / config_.threads << " pid "
                << pids_[static_cast<std::size_t>(s / config_.threads)] << ": mark " << (inside >> kRoleBits) << ":"
                << (inside & kRoleMask);
      if (stuck_after != 0) {
        std::cout << ", in a lock call (a hang in " << static_cast<double>(stuck_after - now_micros) / kMicrosPerSecond
                  << " s)";
      }
      std::cout << "\n";
    }
  }

  // Workers finish the acquisition they are in and exit; a worker that does
  // not within the hang limit is stuck.
  void shutdown() {
    state_.stop.store(1);
    const auto give_up = steady_clock::now() + std::chrono::duration_cast<steady_clock::duration>(
                                                   std::chrono::duration<double>(config_.hang_after_seconds));
    while (alive() > 0 && steady_clock::now() < give_up) {
      reap_unasked(false);
      std::this_thread::sleep_for(kSupervisorTick);
    }
    for (int p = 0; p < config_.processes; ++p) {
      if (pids_[static_cast<std::size_t>(p)] < 0) continue;
      ++hangs_;
      hang_note("worker " + std::to_string(p) + " did not stop within " + seconds_text(config_.hang_after_seconds));
      dump_slots();
      kill_worker(p);
    }
  }

  int alive() const {
    return static_cast<int>(std::count_if(pids_.begin(), pids_.end(), [](pid_t pid) { return pid >= 0; }));
  }

  int report() const {
    std::uint64_t acquisitions = 0;
    std::uint64_t busy = 0;
    for (int k = 0; k < kKinds; ++k) {
      acquisitions += state_.acquired[static_cast<std::size_t>(k)].load();
      busy += state_.busy[static_cast<std::size_t>(k)].load();
    }
    std::uint64_t committed = 0;
    for (int s = 0; s < config_.slots(); ++s) committed += state_.threads[static_cast<std::size_t>(s)].committed.load();
    const counter_record& c = state_.counter;
    const std::uint64_t value = c.value.load();
    const std::uint64_t mismatch = committed > value ? committed - value : value - committed;
    const std::uint64_t lost = mismatch + c.inconsistent.load();
    const std::uint64_t overlaps = state_.overlaps.load();
    const std::uint64_t errors = state_.errors.load();
    const double worst_ms = static_cast<double>(state_.worst_lateness_us.load()) / kMicrosPerMilli;

    std::ostringstream out;
    out.setf(std::ios::fixed);
    out.precision(3);
    out << "fasteners torture: back end " << FASTENERS_TORTURE_BACKEND << ", " << config_.processes << " processes x "
        << config_.threads << " threads, " << elapsed_ << " s, seed " << config_.seed
        << ", broken: " << broken_name(config_.broken) << (kSanitized ? ", sanitized build (run scaled down)" : "")
        << (kHasDowngrade ? "" : ", unlock_and_lock_shared() not in this build") << "\n";
    out << "  acquisitions     " << acquisitions << " (tries that found it busy: " << busy << ")\n";
    for (int k = 0; k < kKinds; ++k) {
      if (static_cast<kind>(k) == kind::downgrade && !kHasDowngrade && config_.broken != broken_mode::downgrade) {
        continue;
      }
      const auto i = static_cast<std::size_t>(k);
      out << "    " << kKindNames[i] << std::string(30 - std::strlen(kKindNames[i]), ' ') << state_.acquired[i].load()
          << " (busy " << state_.busy[i].load() << ")\n";
    }
    out << "  kills            " << kills_ << " (worker deaths not asked for: " << unasked_deaths_ << ")\n";
    out << "  overlaps         " << overlaps
        << " (marks of killed workers seen and excused: " << state_.excused_marks.load()
        << "; most readers inside together: " << state_.max_readers.load() << ")\n";
    out << "  lost updates     " << lost << " (counter " << value << ", committed " << committed
        << "; kills between write and bookkeeping: " << c.credited.load()
        << ", between intent and write: " << c.abandoned.load() << ")\n";
    out << "  hangs            " << hangs_ << " (limit " << seconds_text(config_.hang_after_seconds) << ")\n";
    out << "  worst lateness   " << worst_ms << " ms over " << state_.timed_tries.load()
        << " timed tries (later than deadline + " << seconds_text(config_.late_ms / kMicrosPerMilli) << ": "
        << state_.late_tries.load() << ")\n";
    out << "  errors           " << errors << "\n";
    const std::array<std::pair<const char*, std::string>, 5> firsts{
        {{"first overlap", read_note(state_.first_overlap)},
         {"first lost update", read_note(state_.first_lost_update)},
         {"first hang", first_hang_},
         {"first error", read_note(state_.first_error)},
         {"first worker death", first_death_}}};
    for (const auto& [label, text] : firsts) {
      if (!text.empty()) out << "  " << label << ": " << text << "\n";
    }

    int code = kExitPass;
    if (overlaps != 0) code |= kExitOverlap;
    if (lost != 0) code |= kExitLostUpdate;
    if (hangs_ != 0) code |= kExitHang;
    if (errors != 0 || unasked_deaths_ != 0) code |= kExitWorkerFailure;
    out << "summary: acquisitions=" << acquisitions << " kills=" << kills_ << " overlaps=" << overlaps
        << " lost_updates=" << lost << " hangs=" << hangs_ << " worst_lateness_ms=" << worst_ms
        << " errors=" << errors + unasked_deaths_ << " result=" << (code == kExitPass ? "pass" : "FAIL") << "\n";
    std::cout << out.str() << std::flush;
    return code;
  }

  static const char* broken_name(broken_mode mode) {
    switch (mode) {
      case broken_mode::none:
        return "none";
      case broken_mode::overlap:
        return "overlap";
      case broken_mode::lost:
        return "lost";
      case broken_mode::hang:
        return "hang";
      case broken_mode::downgrade:
        return "downgrade";
    }
    return "?";
  }

  const run_config& config_;
  shared_state& state_;
  std::mt19937_64 random_;
  std::vector<pid_t> pids_;
  std::vector<std::uint64_t> incarnations_;
  std::vector<std::int64_t> flagged_stuck_;  // the stuck_after_us already counted, per slot
  std::uint64_t next_incarnation_ = 1;
  std::uint64_t last_progress_ = 0;
  steady_clock::time_point last_progress_at_;
  std::uint64_t kills_ = 0;
  std::uint64_t unasked_deaths_ = 0;
  std::uint64_t hangs_ = 0;
  double elapsed_ = 0;
  std::string first_hang_;
  std::string first_death_;
};

// ---------------------------------------------------------------------------
// Command line.

const char* const kUsage =
    "usage: fasteners_torture [--processes P] [--threads T] [--seconds S] [--lock-dir DIR]\n"
    "                         [--seed N] [--broken=none|overlap|lost|hang|downgrade] [--hang-after S] [--late-ms MS]\n";

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class T>
T parse_number(const std::string& option, const std::string& text, T low, T high) {
  try {
    std::size_t used = 0;
    T value;
    if constexpr (std::is_floating_point_v<T>) {
      value = static_cast<T>(std::stod(text, &used));
    } else {
      value = static_cast<T>(std::stoull(text, &used));
    }
    if (used == text.size() && value >= low && value <= high) return value;
  } catch (const std::logic_error&) {
  }
  std::ostringstream message;
  message << option << ": '" << text << "' is not a number from " << low << " to " << high;
  throw usage_error(message.str());
}

run_config parse_command_line(int argc, char** argv) {
  run_config config;
  for (int i = 1; i < argc; ++i) {
    std::string option = argv[i];
    std::optional<std::string> value;
    if (const auto eq = option.find('='); option.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = option.substr(eq + 1);
      option.resize(eq);
    }
    if (option == "-h" || option == "--help") {
      std::cout << kUsage;
      std::exit(kExitPass);
    }
    if (!value) {
      if (i + 1 >= argc) throw usage_error(option + " needs a value");
      value = argv[++i];
    }
    if (option == "--processes") {
      config.processes = parse_number(option, *value, 1, kMaxProcesses);
    } else if (option == "--threads") {
      config.threads = parse_number(option, *value, 1, kMaxThreads);
    } else if (option == "--seconds") {
      config.seconds = parse_number(option, *value, 0.0, 1e9);
    } else if (option == "--lock-dir") {
      config.lock_dir = *value;
    } else if (option == "--seed") {
      config.seed = parse_number<std::uint64_t>(option, *value, 0, UINT64_MAX);
      config.seed_given = true;
    } else if (option == "--hang-after") {
      config.hang_after_seconds = parse_number(option, *value, 0.1, 1e6);
    } else if (option == "--late-ms") {
      config.late_ms = parse_number(option, *value, 0.0, 1e9);
    } else if (option == "--broken") {
      if (*value == "none") {
        config.broken = broken_mode::none;
      } else if (*value == "overlap") {
        config.broken = broken_mode::overlap;
      } else if (*value == "lost") {
        config.broken = broken_mode::lost;
      } else if (*value == "hang") {
        config.broken = broken_mode::hang;
      } else if (*value == "downgrade") {
        config.broken = broken_mode::downgrade;
      } else {
        throw usage_error("--broken: '" + *value + "' is not none, overlap, lost, hang or downgrade");
      }
    } else {
      throw usage_error("unknown option " + option);
    }
  }
  if (!config.seed_given) config.seed = static_cast<std::uint64_t>(now_us());
  if (kSanitized)
    config.seconds = std::max(std::min(config.seconds, kSanitizerMinSeconds), config.seconds * kSanitizerTimeScale);
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  run_config config;
  try {
    config = parse_command_line(argc, argv);
  } catch (const usage_error& e) {
    std::cerr << "fasteners_torture: " << e.what() << "\n" << kUsage;
    return kExitUsage;
  }
  try {
    fs::create_directories(config.lock_dir);
    shared_state* state = map_shared_state(config);
    return supervisor(config, *state).run();
  } catch (const std::exception& e) {
    std::cerr << "fasteners_torture: " << e.what() << "\n";
    return kExitSetup;
  }
}
