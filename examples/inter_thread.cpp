// The inter-thread half of the README's quick tour, as a program: a
// reader_writer_lock, the locked / read_locked / write_locked decorators,
// try_lock and synchronized. Built in CI with clang's -Wthread-safety, which
// checks the FASTENERS_GUARDED_BY data below.
#include <fasteners/guards.hpp>
#include <fasteners/locked.hpp>
#include <fasteners/reader_writer_lock.hpp>
#include <fasteners/synchronized.hpp>
#include <fasteners/thread_annotations.hpp>
#include <fasteners/try_lock.hpp>

#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

// Data guarded by a reader_writer_lock: clang checks every access.
class phone_book {
 public:
  void add(const std::string& name, int number) {
    fasteners::write_guard guard{lock_};
    numbers_[name] = number;
  }
  int find(const std::string& name) const {
    fasteners::read_guard guard{lock_};  // many readers at once
    auto it = numbers_.find(name);
    return it == numbers_.end() ? -1 : it->second;
  }

 private:
  mutable fasteners::reader_writer_lock lock_;
  std::map<std::string, int> numbers_ FASTENERS_GUARDED_BY(lock_);
};

struct account {
  std::mutex mutex;
  long balance = 0;
  void deposit(long amount) { balance += amount; }
};

}  // namespace

int main() {
  // reader_writer_lock: many readers or one writer; writers queue in order.
  fasteners::reader_writer_lock table_lock;
  std::map<int, std::string> table;
  {
    auto w = table_lock.write_lock();  // alone
    table[1] = "one";
    auto r = table_lock.read_lock();  // the writer may also read
  }
  {
    auto r = table_lock.read_lock();      // shared with other readers
    auto again = table_lock.read_lock();  // a reader may read again, even with writers waiting
    std::cout << "table[1] = " << table.at(1) << "\n";
  }

  // Decorators: the callable runs with the lock held.
  auto get = fasteners::read_locked(table_lock, [&](int k) { return table.at(k); });
  auto put = fasteners::write_locked(table_lock, [&](int k, std::string v) { table[k] = std::move(v); });
  std::vector<std::thread> threads;
  for (int i = 2; i < 6; ++i) threads.emplace_back([&put, i] { put(i, std::to_string(i)); });
  for (auto& t : threads) t.join();
  std::cout << "table[5] = " << get(5) << "\n";

  // Several locks, taken without deadlock, as std::scoped_lock takes them.
  std::mutex a, b;
  long moved = 0;
  auto transfer = fasteners::locked(a, b, [&](long amount) { return moved += amount; });
  std::cout << "moved " << transfer(5) << "\n";

  // The object's own lock: the callable takes the object first.
  account acct;
  auto deposit = fasteners::locked(&account::mutex, &account::deposit);
  deposit(acct, 5);
  deposit(&acct, 10);
  std::cout << "balance " << acct.balance << "\n";

  // try_lock: a guard that owns the lock only if it could be had now.
  if (auto g = fasteners::try_lock(a)) {
    std::cout << "got a\n";
  } else {
    std::cout << "a is busy\n";
  }

  // synchronized: the data can only be reached with its lock held.
  fasteners::synchronized<std::vector<int>> numbers;
  numbers.wlock()->push_back(1);
  numbers.with_lock([](std::vector<int>& v) { v.push_back(2); });
  const auto size = numbers.with_read_lock([](const std::vector<int>& v) { return v.size(); });
  if (auto r = numbers.try_rlock_for(std::chrono::milliseconds(10))) {
    std::cout << "numbers: " << r->size() << " == " << size << "\n";
  }

  phone_book book;
  book.add("alice", 1234);
  std::cout << "alice: " << book.find("alice") << "\n";
  return 0;
}
