// Clang thread-safety annotations (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html).
//
// With clang and -Wthread-safety these let the compiler check that data is
// only touched with its lock held:
//
//   fasteners::reader_writer_lock lock;
//   std::map<int, int> table FASTENERS_GUARDED_BY(lock);
//
//   int get(int k) {
//     fasteners::read_guard guard{lock};   // annotated, so clang sees the lock held
//     return table.at(k);
//   }
//
// Other compilers see empty macros. The analysis only follows annotated
// functions and scoped guards: std::lock_guard, std::unique_lock and
// std::shared_lock are not annotated by libstdc++, so use
// fasteners::write_guard / fasteners::read_guard (guards.hpp) where you want
// clang to check. The analysis knows nothing of reentrancy: taking a lock that
// the analysis believes held is reported even where reader_writer_lock allows it.
#pragma once

#if defined(__clang__) && !defined(SWIG)
#define FASTENERS_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define FASTENERS_THREAD_ANNOTATION_(x)
#endif

// On a class: objects of this type are locks.
#define FASTENERS_CAPABILITY(name) FASTENERS_THREAD_ANNOTATION_(capability(name))
// On a class: an RAII guard that holds a lock for its lifetime.
#define FASTENERS_SCOPED_CAPABILITY FASTENERS_THREAD_ANNOTATION_(scoped_lockable)

// On data: only touched with the given lock held (shared for reads, exclusive for writes).
#define FASTENERS_GUARDED_BY(x) FASTENERS_THREAD_ANNOTATION_(guarded_by(x))
// On a pointer: the pointee is guarded by the given lock.
#define FASTENERS_PT_GUARDED_BY(x) FASTENERS_THREAD_ANNOTATION_(pt_guarded_by(x))

// Lock ordering, to catch potential deadlocks.
#define FASTENERS_ACQUIRED_AFTER(...) FASTENERS_THREAD_ANNOTATION_(acquired_after(__VA_ARGS__))
#define FASTENERS_ACQUIRED_BEFORE(...) FASTENERS_THREAD_ANNOTATION_(acquired_before(__VA_ARGS__))

// On functions: the caller must (or must not) hold the lock.
#define FASTENERS_REQUIRES(...) FASTENERS_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#define FASTENERS_REQUIRES_SHARED(...) FASTENERS_THREAD_ANNOTATION_(requires_shared_capability(__VA_ARGS__))
#define FASTENERS_EXCLUDES(...) FASTENERS_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))

// On functions: they take or release the lock (`this` if no argument is given).
#define FASTENERS_ACQUIRE(...) FASTENERS_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#define FASTENERS_ACQUIRE_SHARED(...) FASTENERS_THREAD_ANNOTATION_(acquire_shared_capability(__VA_ARGS__))
#define FASTENERS_RELEASE(...) FASTENERS_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#define FASTENERS_RELEASE_SHARED(...) FASTENERS_THREAD_ANNOTATION_(release_shared_capability(__VA_ARGS__))
#define FASTENERS_RELEASE_GENERIC(...) FASTENERS_THREAD_ANNOTATION_(release_generic_capability(__VA_ARGS__))
// On functions returning bool: the lock is held if and only if the result is the first argument.
#define FASTENERS_TRY_ACQUIRE(...) FASTENERS_THREAD_ANNOTATION_(try_acquire_capability(__VA_ARGS__))
#define FASTENERS_TRY_ACQUIRE_SHARED(...) FASTENERS_THREAD_ANNOTATION_(try_acquire_shared_capability(__VA_ARGS__))

// On functions: tell the analysis the lock is held here (checked at run time by the function).
#define FASTENERS_ASSERT_CAPABILITY(x) FASTENERS_THREAD_ANNOTATION_(assert_capability(x))
#define FASTENERS_ASSERT_SHARED_CAPABILITY(x) FASTENERS_THREAD_ANNOTATION_(assert_shared_capability(x))
// On a function returning a lock: which lock it returns.
#define FASTENERS_RETURN_CAPABILITY(x) FASTENERS_THREAD_ANNOTATION_(lock_returned(x))

// Turns the analysis off for one function, for code whose locking it cannot follow.
#define FASTENERS_NO_THREAD_SAFETY_ANALYSIS FASTENERS_THREAD_ANNOTATION_(no_thread_safety_analysis)
