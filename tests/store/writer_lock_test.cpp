// One writer per SQLite file (store/sqlite/writer_lock.h): the stores of one process share
// the lock, another process's lock makes a writer wait (or fail at once without waiting,
// naming the holder), and read-only opens never take it. The "other process" is this test
// holding flock on the lock file through a file descriptor of its own, which flock treats
// exactly like another process.
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <fcntl.h>
#include <fmt/core.h>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "store/sqlite/sqlite_store.h"
#include "store/sqlite/writer_lock.h"
#include "store_backends.h"

namespace lens::store::test {
namespace {

using namespace std::chrono_literals;

class WriterLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = make_backend("sqlite");
    ASSERT_TRUE(backend_);
    path_ = backend_->path();
    auto s = backend_->open({});
    ASSERT_TRUE(s) << s.error().message;
    ASSERT_TRUE((*s)->migrate());
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
  }

  // Takes the lock as another process would, and says who holds it.
  void hold(const std::string& holder_line) {
    fd_ = ::open(sqlite::writer_lock_path(path_).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd_, 0);
    ASSERT_EQ(flock(fd_, LOCK_EX | LOCK_NB), 0);
    ASSERT_EQ(ftruncate(fd_, 0), 0);
    ASSERT_EQ(pwrite(fd_, holder_line.data(), holder_line.size(), 0),
              static_cast<ssize_t>(holder_line.size()));
  }
  void release() {
    close(fd_);
    fd_ = -1;
  }
  util::Result<std::unique_ptr<Store>> open(AccessMode access, bool wait) {
    OpenOptions o;
    o.access = access;
    o.wait_for_writer = wait;
    return backend_->open(o);
  }

  std::unique_ptr<Backend> backend_;
  std::string path_;
  int fd_ = -1;
};

TEST_F(WriterLockTest, TheStoresOfOneProcessShareTheLockAndNameTheirProcess) {
  auto reader = open(AccessMode::read_write, false);
  ASSERT_TRUE(reader) << reader.error().message;
  auto writer = open(AccessMode::read_write, false);
  ASSERT_TRUE(writer) << writer.error().message;
  const auto holder = sqlite::read_lock_holder(path_);
  EXPECT_EQ(holder.pid, std::to_string(getpid()));
  EXPECT_NE(holder.host, "?");
  EXPECT_NE(holder.started_at, "?");
  // Held while either store lives: another holder cannot take it.
  reader->reset();
  const int fd = ::open(sqlite::writer_lock_path(path_).c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_NE(flock(fd, LOCK_EX | LOCK_NB), 0);
  writer->reset();
  EXPECT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  close(fd);
}

TEST_F(WriterLockTest, WithoutWaitingASecondWriterFailsNamingTheHolder) {
  hold("4242 other-host 2024-05-06T07:08:09Z\n");
  auto s = open(AccessMode::read_write, false);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, util::ErrorCode::transient);
  EXPECT_NE(s.error().message.find("pid 4242 on host other-host"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("2024-05-06T07:08:09Z"), std::string::npos) << s.error().message;
  // Readers never take the lock.
  auto ro = open(AccessMode::read_only, false);
  ASSERT_TRUE(ro) << ro.error().message;
  EXPECT_TRUE((*ro)->status(1));
}

TEST_F(WriterLockTest, ASecondWriterWaitsUntilTheHolderIsDone) {
  hold("4343 other-host 2024-05-06T07:08:09Z\n");
  std::atomic<bool> opened{false};
  auto waiting = std::async(std::launch::async, [&] {
    auto s = open(AccessMode::read_write, true);
    opened = true;
    return s;
  });
  // It cannot get through while the lock is held, however long we look.
  EXPECT_EQ(waiting.wait_for(300ms), std::future_status::timeout);
  EXPECT_FALSE(opened.load());
  release();
  ASSERT_EQ(waiting.wait_for(30s), std::future_status::ready);
  auto s = waiting.get();
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(sqlite::read_lock_holder(path_).pid, std::to_string(getpid()));
}

}  // namespace
}  // namespace lens::store::test
