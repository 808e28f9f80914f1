// layers/file_io.cpp's own contract (file_io_internal.h), where the callers' tests do not reach:
// InputFile refuses what is not a regular file (a FIFO without a writer included: opening it
// must not wait for one), continues short and interrupted reads, names the offset of a failed
// one, and reports a file that shrinks while it is read instead of returning zeros; an atomic
// write syncs the new bytes before the rename and the folder after it, and a failed sync leaves
// the old file and no temporary file. Also the output checks' edges (output_files.h).
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <random>
#include <string>
#include <vector>

#include "error_text.h"
#include "temp_dir.h"
#include "kestrel/core/error.h"
#include "kestrel/layers/file_io_internal.h"
#include "kestrel/layers/output_files.h"

// fsync, seen by this test binary and the library it links: the system's, and with a watch set
// (by one test at a time, never otherwise) a record of what was synced, or a failure for the
// chosen kind of file. Without a watch it only forwards.
namespace {
struct FsyncWatch {
  bool on = false;
  bool fail_files = false;            // regular files fail with EIO
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
using kestrel::detail::InputFile;

std::vector<std::uint8_t> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> b(n);
  for (std::uint8_t& v : b) v = static_cast<std::uint8_t>(rng());
  return b;
}

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
  g_watch = FsyncWatch{true, false, path, {}, 0};
  kestrel::detail::write_file_atomic(bytes.data(), bytes.size(), path);
  g_watch.on = false;
  EXPECT_EQ(g_watch.events, (std::vector<std::string>{"file", "folder (after the rename)"}));
  EXPECT_EQ(g_watch.file_inode, inode_of(path)) << "the synced file is not the one renamed into place";
  EXPECT_EQ(kestrel::testing::read_bytes(path), bytes);
}

TEST(AtomicWrite, AFailedSyncLeavesTheOldFileAndNoTemporaryFile) {
  TempDir dir("atomic_sync_fails");
  const std::string path = dir / "ck.bin";
  const std::vector<std::uint8_t> old_bytes = random_bytes(300, 10), new_bytes = random_bytes(5000, 11);
  kestrel::testing::write_bytes(path, old_bytes);
  g_watch = FsyncWatch{true, true, path, {}, 0};
  const std::string e = error_of([&] { kestrel::detail::write_file_atomic(new_bytes.data(), new_bytes.size(), path); });
  g_watch.on = false;
  EXPECT_NE(e.find("cannot write " + path + ": fsync of " + path + ".tmp."), std::string::npos) << e;
  EXPECT_NE(e.find("Input/output error"), std::string::npos) << e;
  EXPECT_EQ(kestrel::testing::read_bytes(path), old_bytes);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"ck.bin"});
}

}  // namespace

namespace {

// No output asked for ("") touches nothing, not even the current folder: here one where no file
// can be created (/proc), which a probe there would report.
TEST(OutputFiles, AnEmptyNameIsAcceptedWithoutProbingTheCurrentFolder) {
  const std::filesystem::path cwd = std::filesystem::current_path();
  std::filesystem::current_path("/proc");
  std::string e;
  try {
    kestrel::check_output_file("", "--log");
  } catch (const kestrel::Error& err) {
    e = err.what();
  }
  std::filesystem::current_path(cwd);
  EXPECT_EQ(e, "") << "an empty name was checked as a file in the current folder";
}

// A folder that exists but takes no files (/proc: even root cannot create one there) is refused
// by check_output_folder, as is a file's "folder" that is a regular file, named as such.
TEST(OutputFiles, AnExistingFolderThatTakesNoFilesAndAFileUsedAsAFolderAreRefused) {
  const std::string e = error_of([] { kestrel::check_output_folder("/proc", "--out"); });
  EXPECT_NE(e.find("--out /proc: cannot create files in the folder ("), std::string::npos) << e;
  TempDir dir("output_not_folder");
  kestrel::testing::write_bytes(dir / "file", random_bytes(16, 12));
  const std::string f = error_of([&] { kestrel::check_output_file(dir / "file/ck.st", "--checkpoint"); });
  EXPECT_NE(f.find("--checkpoint " + (dir / "file/ck.st") + ": " + (dir / "file") + " is not a folder"),
            std::string::npos) << f;
}

std::size_t digits(long long n) { return std::to_string(n).size(); }

// The boundary of the name-length check, against the folder's own limit (pathconf NAME_MAX): a
// name that leaves exactly room for its temporary name "<name>.tmp.<pid>.<n>" passes and is
// written; one character more is refused before anything is written.
TEST(OutputFiles, ANameIsRefusedExactlyWhenItsTemporaryNameWouldNotFit) {
  TempDir dir("name_boundary");
  const long name_max = ::pathconf(dir.path().c_str(), _PC_NAME_MAX);
  ASSERT_GT(name_max, 64);
  const std::string pid = std::to_string(static_cast<long long>(::getpid()));
  // The counter's next values must have one number of digits for the next few calls.
  long long next = 0;
  for (;;) {
    std::string probe;
    int err = 0;
    const std::string prefix = dir / "p.";
    const int fd = kestrel::detail::create_exclusive(prefix, 0600, &probe, &err);
    ASSERT_GE(fd, 0) << err;
    ::close(fd);
    std::filesystem::remove(probe);
    next = std::stoll(probe.substr(prefix.size() + pid.size() + 1)) + 1;
    if (digits(next) == digits(next + 3)) break;
  }
  // ".tmp." + pid + "." + n must fit after the name.
  const std::size_t room = static_cast<std::size_t>(name_max) - 5 - pid.size() - 1 - digits(next);
  const std::string fits = dir / std::string(room, 'f'), too_long = dir / std::string(room + 1, 'g');
  EXPECT_NO_THROW(kestrel::check_output_file(fits, "--checkpoint"));
  const std::vector<std::uint8_t> bytes = random_bytes(100, 13);
  kestrel::detail::write_file_atomic(bytes.data(), bytes.size(), fits);
  EXPECT_EQ(kestrel::testing::read_bytes(fits), bytes);
  const std::string e = error_of([&] { kestrel::check_output_file(too_long, "--checkpoint"); });
  EXPECT_NE(e.find("the file name is too long (" + std::to_string(room + 1) + " characters"), std::string::npos) << e;
  EXPECT_EQ(dir.entries(), std::vector<std::string>{std::string(room, 'f')});
}

}  // namespace
