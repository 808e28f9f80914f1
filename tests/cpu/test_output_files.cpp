// layers/output_files.h's checks at their edges: an empty name touches nothing, a folder that
// takes no files and a file used as a folder are refused, and the name-length check's boundary
// against the folder's own NAME_MAX (tests/host_faults/test_file_io.cpp has the rest of the
// file I/O contract, under interposed fsync and pread).
#include <unistd.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "error_text.h"
#include "storage_buffer.h"
#include "temp_dir.h"
#include "kestrel/core/error.h"
#include "kestrel/layers/file_io_internal.h"
#include "kestrel/layers/output_files.h"

namespace {

using kestrel::testing::TempDir;
using kestrel::testing::error_of;
using kestrel::testing::random_bytes;


// The error of `f` (or "(no error)") when run with `dir` as the current folder, which is restored.
template <typename F>
std::string error_in_folder(const std::filesystem::path& dir, F&& f) {
  const std::filesystem::path cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir);
  const std::string e = error_of(std::forward<F>(f));
  std::filesystem::current_path(cwd);
  return e;
}

// No output asked for ("") touches nothing, not even the current folder: here one where no file
// can be created (/proc), which a probe there would report.
TEST(OutputFiles, AnEmptyNameIsAcceptedWithoutProbingTheCurrentFolder) {
  EXPECT_EQ(error_in_folder("/proc", [] { kestrel::check_output_file("", "--log"); }), "(no error)")
      << "an empty name was checked as a file in the current folder";
}

// Empty names are refused by name, not passed on: an output folder, a file written atomically, a
// folder to create; and an empty name is the same file as none (not as the current folder). A
// bare file name is checked in the current folder (its folder is ".", not "").
TEST(OutputFiles, EmptyAndBareNames) {
  EXPECT_NE(error_of([] { kestrel::check_output_folder("", "--out"); }).find("--out: empty folder name"), std::string::npos);
  const std::uint8_t byte = 7;
  EXPECT_NE(error_of([&] { kestrel::detail::write_file_atomic(&byte, 1, ""); }).find("cannot write a file with an empty path"),
            std::string::npos);
  EXPECT_NE(error_of([] { kestrel::detail::make_directories(""); }).find("cannot create a folder with an empty path"),
            std::string::npos);
  EXPECT_FALSE(kestrel::same_file("", "."));
  EXPECT_FALSE(kestrel::same_file(".", ""));
  TempDir dir("output_bare_name");
  EXPECT_EQ(error_in_folder(dir.path(), [] { kestrel::check_output_file("bare.bin", "--checkpoint"); }), "(no error)");
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
