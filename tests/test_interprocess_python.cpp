// Interop with Python fasteners (Debian's python3-fasteners): the same lock
// file, real Python processes, both directions, exclusive and shared.
#include <fasteners/interprocess_lock.hpp>

#include <gtest/gtest.h>

#include <string>

#include "test_support.hpp"

namespace {

using fasteners::interprocess_lock;
using fasteners::interprocess_reader_writer_lock;
using fasteners::test::child_process;
using fasteners::test::temp_dir;

const std::string script = std::string(FASTENERS_SOURCE_DIR) + "/tests/helper/python_fasteners.py";

class PythonFasteners : public ::testing::Test {
 protected:
  void SetUp() override { FASTENERS_REQUIRE_PYTHON_FASTENERS(); }

  child_process python(const std::string& command, const std::string& kind, const std::filesystem::path& path) {
    return child_process(fasteners::test::python_with_fasteners(), {script, command, kind, path.string()});
  }

  // Runs a one-shot `try` in Python: 0 acquired, 3 busy.
  int python_try(const std::string& kind, const std::filesystem::path& path) {
    auto child = python("try", kind, path);
    child.close_stdin();
    auto code = child.wait();
    return code ? *code : -1;
  }

  struct python_holder {
    child_process child;
    void release() {
      child.close_stdin();
      EXPECT_EQ(child.wait(), 0);
    }
  };
  python_holder python_hold(const std::string& kind, const std::filesystem::path& path) {
    python_holder h{python("hold", kind, path)};
    EXPECT_TRUE(h.child.wait_for_line("locked")) << h.child.read_all();
    return h;
  }

  temp_dir dir_;
};

TEST_F(PythonFasteners, PythonInterProcessLockExcludesOurs) {
  const auto path = dir_ / "lock";
  auto held = python_hold("lock", path);
  interprocess_lock ours(path);
  EXPECT_FALSE(ours.try_lock());
  interprocess_reader_writer_lock rw(path);
  EXPECT_FALSE(rw.try_lock_shared());
  held.release();
  EXPECT_TRUE(ours.try_lock());
  ours.unlock();
}

TEST_F(PythonFasteners, OursExcludesPythonInterProcessLock) {
  const auto path = dir_ / "lock";
  interprocess_lock ours(path);
  ours.lock();
  EXPECT_EQ(python_try("lock", path), 3);
  EXPECT_EQ(python_try("read", path), 3);
  ours.unlock();
  EXPECT_EQ(python_try("lock", path), 0);
}

TEST_F(PythonFasteners, PythonReaderSharesWithOurReaderAndExcludesOurWriter) {
  const auto path = dir_ / "lock";
  auto held = python_hold("read", path);
  interprocess_reader_writer_lock rw(path);
  EXPECT_TRUE(rw.try_lock_shared());
  rw.unlock_shared();
  EXPECT_FALSE(rw.try_lock());
  held.release();
  EXPECT_TRUE(rw.try_lock());
  rw.unlock();
}

TEST_F(PythonFasteners, OurReaderSharesWithPythonReaderAndExcludesPythonWriter) {
  const auto path = dir_ / "lock";
  interprocess_reader_writer_lock rw(path);
  rw.lock_shared();
  EXPECT_EQ(python_try("read", path), 0);
  EXPECT_EQ(python_try("write", path), 3);
  rw.unlock_shared();
  EXPECT_EQ(python_try("write", path), 0);
}

TEST_F(PythonFasteners, PythonWriterExcludesOurReaders) {
  const auto path = dir_ / "lock";
  auto held = python_hold("write", path);
  interprocess_reader_writer_lock rw(path);
  EXPECT_FALSE(rw.try_lock_shared());
  held.release();
  EXPECT_TRUE(rw.try_lock_shared());
  rw.unlock_shared();
}

TEST_F(PythonFasteners, OurWaiterWakesWhenPythonReleases) {
  const auto path = dir_ / "lock";
  auto held = python_hold("lock", path);
  interprocess_lock ours(path);
  EXPECT_FALSE(ours.try_lock_for(std::chrono::milliseconds(100)));
  held.release();
  EXPECT_TRUE(ours.try_lock_for(std::chrono::seconds(60)));
  ours.unlock();
}

}  // namespace
