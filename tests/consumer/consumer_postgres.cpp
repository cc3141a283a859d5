// Built against an installed fasteners (component postgres) by scripts/test-all.sh:
// takes a lock on the server that CONNINFO reaches, asks the server that it
// holds it, and lets go.
#include <fasteners/postgres_lock.hpp>

#include <iostream>
#include <mutex>

int main(int argc, char** argv) {
  if (argc != 2) return 64;
  fasteners::postgres_lock lock("fasteners-consumer", fasteners::postgres_options{argv[1]});
  {
    std::lock_guard<fasteners::postgres_lock> guard(lock);
    lock.ensure_held();  // throws fasteners::lock_lost unless the server shows the lock
    std::cout << "consumer_postgres: locked '" << lock.name() << "' (key "
              << fasteners::postgres_hash64_key(lock.name()) << ")\n";
  }
  return lock.owns_lock() ? 1 : 0;
}
