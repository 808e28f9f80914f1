// layers/file_io.cpp's own contract (file_io_internal.h), where the callers' tests do not reach:
// InputFile refuses what is not a regular file (a FIFO without a writer included: opening it
// must not wait for one), continues short and interrupted reads, names the offset of a failed
// one, and reports a file that shrinks while it is read instead of returning zeros; an atomic
// write syncs the new bytes before the rename and the folder after it, a failed sync leaves
// the old file and no temporary file, and a folder that cannot be synced (EINVAL) is no error
// where an I/O error is. Here among the host faults, not in kestrel_cpu_tests:
// this binary replaces fsync and pread (forwarding unless a test sets a watch), which no other
// CPU test should run under.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <future>
#include <string>
#include <vector>

#include "error_text.h"
#include "storage_buffer.h"
#include "temp_dir.h"
#include "kestrel/core/error.h"
#include "kestrel/layers/file_io_internal.h"

// fsync, seen by this test binary and the library it links: the system's, and with a watch set
// (by one test at a time, never otherwise) a record of what was synced, or a failure for the
// chosen kind of file. Without a watch it only forwards.
namespace {
struct FsyncWatch {
  bool on = false;
  bool fail_files = false;            // regular files fail with EIO
  int folder_errno = 0;               // folders fail with this errno (0: they do not)
  std::string target;                 // the atomic write's destination
  std::vector<std::string> events;    // "file synced, target had its inode: yes/no", "folder ..."
  ino_t file_inode = 0;
};
FsyncWatch g_watch;

ino_t inode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}
}  // namespace

extern "C" int fsync(int fd) {
  using Fn = int (*)(int);
  static const Fn real = reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, "fsync"));
  if (g_watch.on) {
    struct stat st {};
    if (::fstat(fd, &st) == 0) {
      if (S_ISREG(st.st_mode)) {
        g_watch.file_inode = st.st_ino;
        g_watch.events.push_back(inode_of(g_watch.target) == st.st_ino ? "file (already renamed)" : "file");
        if (g_watch.fail_files) {
          errno = EIO;
          return -1;
        }
      } else if (S_ISDIR(st.st_mode)) {
        g_watch.events.push_back(inode_of(g_watch.target) == g_watch.file_inode ? "folder (after the rename)"
                                                                                 : "folder (before the rename)");
        if (g_watch.folder_errno != 0) {
          errno = g_watch.folder_errno;
          return -1;
        }
      }
    }
  }
  return real(fd);
}

// pread likewise: with a watch set, at most `chunk` bytes a call (a short read, as a pipe or a
// network file system may give), an EINTR before the first call, and an EIO at call `fail_call`.
namespace {
struct PreadWatch {
  bool on = false;
  std::size_t chunk = 0;
  int calls = 0;
  int fail_call = -1;
  bool interrupt_first = false;
};
PreadWatch g_pread;
}  // namespace

extern "C" ssize_t pread(int fd, void* buf, size_t count, off_t offset) {
  using Fn = ssize_t (*)(int, void*, size_t, off_t);
  static const Fn real = reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, "pread"));
  if (g_pread.on) {
    const int call = g_pread.calls++;
    if (call == 0 && g_pread.interrupt_first) {
      errno = EINTR;
      return -1;
    }
    if (call == g_pread.fail_call) {
      errno = EIO;
      return -1;
    }
    if (g_pread.chunk != 0 && count > g_pread.chunk) count = g_pread.chunk;
  }
  return real(fd, buf, count, offset);
}

namespace {

using kestrel::testing::TempDir;
using kestrel::testing::error_of;
using kestrel::testing::random_bytes;
using kestrel::detail::InputFile;


TEST(InputFile, AFileThatShrinksWhileItIsReadIsAnErrorNotZeros) {
  TempDir dir("input_shrinks");
  const std::string path = dir / "batch.bin";
  kestrel::testing::write_bytes(path, random_bytes(4096, 7));
  InputFile in(path);
  ASSERT_EQ(in.size(), 4096u);
  ASSERT_EQ(::truncate(path.c_str(), 1000), 0);  // another process cut it after the size was taken
  const std::string e = error_of([&] { in.read_all(); });
  EXPECT_NE(e.find("read failure in " + path + ": got 1000 of 4096 bytes"), std::string::npos) << e;
  // Unchanged, the bytes come back exactly.
  const std::vector<std::uint8_t> bytes = random_bytes(4096, 8);
  kestrel::testing::write_bytes(path, bytes);
  EXPECT_EQ(InputFile(path).read_all(), bytes);
}

// A short read is continued where it stopped and an interrupted one is retried, so the bytes
// come back exactly; a read error names the file and the offset it happened at.
TEST(InputFile, ShortAndInterruptedReadsAreContinuedAndAReadErrorNamesItsOffset) {
  TempDir dir("input_short_reads");
  const std::string path = dir / "batch.bin";
  const std::vector<std::uint8_t> bytes = random_bytes(10000, 14);
  kestrel::testing::write_bytes(path, bytes);
  {
    InputFile in(path);
    g_pread = PreadWatch{true, 3000, 0, -1, true};
    const std::vector<std::uint8_t> got = in.read_all();
    g_pread.on = false;
    EXPECT_EQ(got, bytes);
    EXPECT_EQ(g_pread.calls, 5) << "one EINTR, then 3000 + 3000 + 3000 + 1000 bytes";
  }
  InputFile in(path);
  g_pread = PreadWatch{true, 3000, 0, 2, false};
  const std::string e = error_of([&] { in.read_all(); });
  g_pread.on = false;
  EXPECT_NE(e.find("read failure in " + path + " at byte offset 6000: Input/output error"), std::string::npos) << e;
}

TEST(InputFile, FoldersDevicesAndFifosAreRefusedWithoutWaiting) {
  TempDir dir("input_special");
  const std::string fifo = dir / "pipe.bin";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& path : {dir.path().string(), std::string("/dev/null")}) {
    const std::string e = error_of([&] { InputFile in(path); });
    EXPECT_NE(e.find("cannot read " + path + ": not a regular file"), std::string::npos) << e;
  }
  // No process writes to the FIFO: an open that waits for a writer would never return, so it is
  // given 5 s, then released by opening the other end (and reported).
  std::future<std::string> refused =
      std::async(std::launch::async, [&] { return error_of([&] { InputFile in(fifo); }); });
  if (refused.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    ADD_FAILURE() << "opening FIFO " << fifo << " waited for a writer";
    const int writer = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    refused.wait();
    if (writer >= 0) ::close(writer);
  }
  const std::string e = refused.get();
  EXPECT_NE(e.find("cannot read " + fifo + ": not a regular file"), std::string::npos) << e;
  const std::string missing = error_of([&] { InputFile in(dir / "missing.bin"); });
  EXPECT_NE(missing.find("cannot open " + (dir / "missing.bin") + ": No such file or directory"), std::string::npos)
      << missing;
}

// The new bytes are synced under the temporary name (before the rename makes them the file),
// then the folder, after the rename, so that the new name survives a crash.
TEST(AtomicWrite, SyncsTheBytesBeforeTheRenameAndTheFolderAfterIt) {
  TempDir dir("atomic_sync");
  const std::string path = dir / "ck.bin";
  const std::vector<std::uint8_t> bytes = random_bytes(10000, 9);
  g_watch = FsyncWatch{true, false, 0, path, {}, 0};
  kestrel::detail::write_file_atomic(bytes.data(), bytes.size(), path);
  g_watch.on = false;
  EXPECT_EQ(g_watch.events, (std::vector<std::string>{"file", "folder (after the rename)"}));
  EXPECT_EQ(g_watch.file_inode, inode_of(path)) << "the synced file is not the one renamed into place";
  EXPECT_EQ(kestrel::testing::read_bytes(path), bytes);
}

// The folder's sync after the rename: a file system that cannot sync a folder (EINVAL) is no
// error, since the new bytes are in place all the same; a real I/O error is reported, naming the
// folder, with the new file in place.
TEST(AtomicWrite, AFolderThatCannotBeSyncedIsNoErrorButAFailedSyncIs) {
  TempDir dir("atomic_folder_sync");
  const std::string path = dir / "ck.bin";
  const std::vector<std::uint8_t> bytes = random_bytes(700, 12);
  for (const int err : {EINVAL, EIO}) {
    g_watch = FsyncWatch{true, false, err, path, {}, 0};
    const std::string e = error_of([&] { kestrel::detail::write_file_atomic(bytes.data(), bytes.size(), path); });
    g_watch.on = false;
    if (err == EINVAL) {
      EXPECT_EQ(e, "(no error)");
    } else {
      EXPECT_NE(e.find(path + " was written, but syncing directory " + dir.path().string() + " failed: Input/output error"),
                std::string::npos) << e;
    }
    EXPECT_EQ(kestrel::testing::read_bytes(path), bytes) << err;
  }
}

TEST(AtomicWrite, AFailedSyncLeavesTheOldFileAndNoTemporaryFile) {
  TempDir dir("atomic_sync_fails");
  const std::string path = dir / "ck.bin";
  const std::vector<std::uint8_t> old_bytes = random_bytes(300, 10), new_bytes = random_bytes(5000, 11);
  kestrel::testing::write_bytes(path, old_bytes);
  g_watch = FsyncWatch{true, true, 0, path, {}, 0};
  const std::string e = error_of([&] { kestrel::detail::write_file_atomic(new_bytes.data(), new_bytes.size(), path); });
  g_watch.on = false;
  EXPECT_NE(e.find("cannot write " + path + ": fsync of " + path + ".tmp."), std::string::npos) << e;
  EXPECT_NE(e.find("Input/output error"), std::string::npos) << e;
  EXPECT_EQ(kestrel::testing::read_bytes(path), old_bytes);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"ck.bin"});
}

}  // namespace
