// Outputs at a symbolic link or a special file. A write goes through a link to the file it names
// (the link stays a link), and a path that is a device, a FIFO or a socket is refused before
// anything is written: the atomic write's rename would replace it with a regular file (a run
// given --checkpoint /dev/null as root once turned /dev/null into a checkpoint).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "error_text.h"
#include "temp_dir.h"
#include "kestrel/layers/file_io_internal.h"
#include "kestrel/layers/output_files.h"

using kestrel::testing::TempDir;
using kestrel::testing::error_of;
namespace fs = std::filesystem;

namespace {
void write_text(const std::string& path, const std::string& text) {
  kestrel::detail::write_file_atomic(reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), path);
}
std::string read_text(const std::string& path) {
  const std::vector<std::uint8_t> b = kestrel::testing::read_bytes(path);
  return std::string(b.begin(), b.end());
}
}  // namespace

TEST(OutputLinks, AWriteGoesThroughALinkChainAndKeepsTheLinks) {
  TempDir dir("output_links");
  fs::create_directories(dir / "runs");
  write_text(dir / "runs/real.st", "old");
  fs::create_symlink("runs/real.st", dir / "latest.st");  // relative, to a file in a sub-folder
  fs::create_symlink(dir / "latest.st", dir / "alias.st");  // absolute, to the first link
  EXPECT_NO_THROW(kestrel::check_output_file(dir / "alias.st", "--checkpoint"));
  write_text(dir / "alias.st", "new");
  EXPECT_TRUE(fs::is_symlink(dir / "alias.st"));
  EXPECT_TRUE(fs::is_symlink(dir / "latest.st"));
  EXPECT_EQ(read_text(dir / "runs/real.st"), "new");
  EXPECT_EQ(read_text(dir / "alias.st"), "new");
  // A link to a file not created yet creates it where the link points.
  fs::create_symlink("runs/next.st", dir / "next.st");
  write_text(dir / "next.st", "first");
  EXPECT_TRUE(fs::is_symlink(dir / "next.st"));
  EXPECT_EQ(read_text(dir / "runs/next.st"), "first");
  // No temporary file is left in either folder.
  std::vector<std::string> top = dir.entries(), runs;
  for (const auto& e : fs::directory_iterator(dir / "runs")) runs.push_back(e.path().filename().string());
  EXPECT_EQ(top.size(), 4u);  // runs, latest.st, alias.st, next.st
  EXPECT_EQ(runs.size(), 2u);  // real.st, next.st
}

TEST(OutputLinks, DevicesFifosAndLinksToThemAreRefusedAndLeftAsTheyWere) {
  TempDir dir("output_special");
  const std::string fifo = dir / "pipe.st";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  fs::create_symlink(fifo, dir / "to_pipe.st");
  for (const std::string& path : {fifo, dir / "to_pipe.st"}) {
    const std::string check = error_of([&] { kestrel::check_output_file(path, "--checkpoint"); });
    EXPECT_NE(check.find("--checkpoint " + path), std::string::npos) << check;
    EXPECT_NE(check.find("is a FIFO, not a file"), std::string::npos) << check;
    const std::string write = error_of([&] { write_text(path, "data"); });
    EXPECT_NE(write.find("is a FIFO, not a file"), std::string::npos) << write;
    EXPECT_TRUE(fs::is_fifo(fifo)) << path << " replaced the FIFO";
  }
  EXPECT_EQ(dir.entries().size(), 2u) << "a temporary file was left";
  // /dev/null is only checked (never written here, whatever the outcome).
  const std::string null = error_of([] { kestrel::check_output_file("/dev/null", "--log"); });
  EXPECT_NE(null.find("--log /dev/null is a character device, not a file"), std::string::npos) << null;
  // A loop of links is refused, not followed for ever.
  fs::create_symlink(dir / "b.st", dir / "a.st");
  fs::create_symlink(dir / "a.st", dir / "b.st");
  const std::string loop = error_of([&] { kestrel::check_output_file(dir / "a.st", "--checkpoint"); });
  EXPECT_NE(loop.find("too many levels of symbolic links"), std::string::npos) << loop;
  EXPECT_EQ(loop.find("[at "), loop.rfind("[at ")) << "one source location, not the inner error's too: " << loop;
  // A link of another user's is not followed (only root can make one here to try).
  if (::geteuid() == 0) {
    const std::string victim = dir / "victim.txt", planted = dir / "planted.st";
    write_text(victim, "theirs");
    fs::create_symlink(victim, planted);
    ASSERT_EQ(::lchown(planted.c_str(), 12345, 12345), 0);
    const std::string other = error_of([&] { write_text(planted, "ours"); });
    EXPECT_NE(other.find("belongs to another user"), std::string::npos) << other;
    EXPECT_EQ(read_text(victim), "theirs");
    EXPECT_TRUE(fs::is_symlink(planted));
  }
}
