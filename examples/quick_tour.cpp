// The README's quick tour, line for line, as a program that runs. The lock
// files go to a temporary directory instead of /var/lock/myapp.
#include <fasteners/fasteners.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>

struct Account {
  std::mutex mutex_;
  long balance = 0;
  void deposit(long amount) { balance += amount; }
};

int main() {
  const auto dir = std::filesystem::temp_directory_path() / "fasteners-quick-tour";

  fasteners::interprocess_lock lock{dir / "db.lock"};  // parents created on first lock
  { std::lock_guard guard{lock}; /* exclusive across processes AND threads */ }
  if (lock.try_lock_for(std::chrono::seconds{2})) { /* ... */
    lock.unlock();
  }

  fasteners::interprocess_reader_writer_lock rw{dir / "cache.lock"};
  { auto r = rw.read_lock(); }   // shared with other readers, any process
  { auto w = rw.write_lock(); }  // alone

  auto rebuild = fasteners::interprocess_locked(dir / "build.lock", [] { std::cout << "rebuilding, alone\n"; });
  rebuild();

  std::map<int, int> table{{1, 10}};
  fasteners::reader_writer_lock table_lock;  // inter-thread
  auto get = fasteners::read_locked(table_lock, [&](int k) { return table.at(k); });
  auto put = fasteners::write_locked(table_lock, [&](int k, int v) { table[k] = v; });
  put(2, 20);
  std::cout << "table[2] = " << get(2) << "\n";

  std::mutex a, b;
  auto transfer = fasteners::locked(a, b, [&](int amount) {
    return amount; /* both held, deadlock-free */
  });
  transfer(5);
  auto deposit = fasteners::locked(&Account::mutex_, &Account::deposit);  // deposit(account, 5)
  Account account;
  deposit(account, 5);
  std::cout << "balance " << account.balance << "\n";

  if (auto g = fasteners::try_lock(a)) { /* held */
    std::cout << "got a\n";
  } else { /* busy */
  }
  return 0;
}
