// Outputs at a symbolic link or a special file. A write goes through a link to the file it names
// (the link stays a link), and a path that is a device, a FIFO or a socket is refused before
// anything is written: the atomic write's rename would replace it with a regular file (a run
// given --checkpoint /dev/null as root once turned /dev/null into a checkpoint).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

// Links are followed as the kernel follows them when it opens a path (path_resolution(7)): a
// chain of 40 is followed, a 41st link is a loop ("too many levels of symbolic links", ELOOP).
// The kernel's own open() on the same chains is the reference.
TEST(OutputLinks, FortyLinksInAChainAreFollowedAndAFortyFirstIsRefusedAsTheKernelDoes) {
  TempDir dir("output_chain");
  write_text(dir / "real.st", "old");
  std::string prev = "real.st";
  for (int i = 1; i <= 41; ++i) {
    const std::string name = "l" + std::to_string(i) + ".st";
    fs::create_symlink(prev, dir / name);  // relative, each to the one before
    prev = name;
  }
  const std::string l40 = dir / "l40.st", l41 = dir / "l41.st";
  const int fd40 = ::open(l40.c_str(), O_RDONLY);
  EXPECT_GE(fd40, 0) << "the kernel follows 40 links";
  if (fd40 >= 0) ::close(fd40);
  errno = 0;
  EXPECT_EQ(::open(l41.c_str(), O_RDONLY), -1);
  EXPECT_EQ(errno, ELOOP) << "the kernel refuses 41";
  EXPECT_NO_THROW(kestrel::check_output_file(l40, "--checkpoint"));
  write_text(l40, "new");
  EXPECT_EQ(read_text(dir / "real.st"), "new");
  EXPECT_TRUE(fs::is_symlink(l40));
  const std::string e = error_of([&] { write_text(l41, "newer"); });
  EXPECT_NE(e.find(l41 + ": too many levels of symbolic links"), std::string::npos) << e;
  EXPECT_EQ(read_text(dir / "real.st"), "new");
  EXPECT_EQ(dir.entries().size(), 42u) << "a temporary file was left";
}

// A socket is refused like a FIFO, named as what it is; through a link, the message names the
// link given and, in parentheses, the file it ends at.
TEST(OutputLinks, ASocketIsRefusedAndALinksMessageNamesWhereItEnds) {
  TempDir dir("output_socket");
  const std::string sock = dir / "s.st";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(sock.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  fs::create_symlink(sock, dir / "to_sock.st");
  const std::string direct = error_of([&] { kestrel::check_output_file(sock, "--log"); });
  EXPECT_NE(direct.find("--log " + sock + " is a socket, not a file"), std::string::npos) << direct;
  const std::string linked = error_of([&] { write_text(dir / "to_sock.st", "data"); });
  EXPECT_NE(linked.find((dir / "to_sock.st") + " (" + sock + ") is a socket, not a file"), std::string::npos) << linked;
  EXPECT_TRUE(fs::is_socket(sock));
  ::close(fd);
  EXPECT_EQ(dir.entries().size(), 2u) << "a temporary file was left";
}
