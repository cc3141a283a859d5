// Built against an installed fasteners by scripts/test-all.sh.
#include <fasteners/fasteners.hpp>

#include <iostream>
#include <mutex>

int main(int argc, char** argv) {
  if (argc != 2) return 64;
  fasteners::interprocess_lock lock(argv[1]);
  std::lock_guard<fasteners::interprocess_lock> guard(lock);
  std::cout << "consumer: locked " << lock.path() << " with fasteners " << fasteners::version_string << "\n";
  return lock.owns_lock() ? 0 : 1;
}
