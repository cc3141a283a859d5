// The inter-process half of the README's quick tour, as a program.
#include <fasteners/interprocess_lock.hpp>
#include <fasteners/interprocess_locked.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <mutex>

int main() {
  const auto dir = std::filesystem::temp_directory_path() / "fasteners-tour";

  fasteners::interprocess_lock lock{dir / "db.lock"};  // parents created on first lock
  {
    std::lock_guard guard{lock};  // exclusive across processes AND threads
    std::cout << "holding " << lock.path() << "\n";
  }
  if (lock.try_lock_for(std::chrono::seconds{2})) {
    std::cout << "got it within 2 s\n";
    lock.unlock();
  }

  fasteners::interprocess_reader_writer_lock rw{dir / "cache.lock"};
  {
    auto r = rw.read_lock();  // shared with other readers, any process
    std::cout << "reading\n";
  }
  {
    auto w = rw.write_lock();  // alone
    std::cout << "writing\n";
  }

  auto rebuild = fasteners::interprocess_locked(dir / "build.lock", [](int jobs) {
    std::cout << "rebuilding with " << jobs << " jobs, alone\n";
    return 0;
  });
  return rebuild(4);
}
