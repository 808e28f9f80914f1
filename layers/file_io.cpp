#include "kestrel/layers/file_io_internal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>

#include "kestrel/core/error.h"
#include "kestrel/layers/output_files.h"

namespace kestrel::detail {

std::string errno_text(int err) { return std::strerror(err); }

InputFile::InputFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: a FIFO is refused below instead of waiting here for a writer (it has no effect
  // on reading a regular file).
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  KESTREL_CHECK(fd_ >= 0, "cannot open ", path, ": ", errno_text(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    KESTREL_FAIL("cannot stat ", path, ": ", errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    KESTREL_FAIL("cannot read ", path, ": not a regular file");
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<std::uint8_t> InputFile::read_all() {
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size_));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t got = ::pread(fd_, bytes.data() + done, bytes.size() - done,
                                static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    KESTREL_CHECK(got >= 0, "read failure in ", path_, " at byte offset ", done, ": ",
                  errno_text(errno));
    // The file shrank while we read it: report what we got rather than return zeros.
    KESTREL_CHECK(got > 0, "read failure in ", path_, ": got ", done, " of ", bytes.size(),
                  " bytes (file truncated while reading?)");
    done += static_cast<std::size_t>(got);
  }
  return bytes;
}

namespace {
// The folder holding `path` ("." for a bare file name).
std::string folder_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

// O_EXCL fails on any existing name, symbolic links included, and the per-process counter keeps
// two threads apart. A name that exists is skipped for the next.
int create_exclusive(const std::string& prefix, mode_t mode, std::string* path, int* err) {
  static std::atomic<std::uint64_t> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    *path = prefix + std::to_string(static_cast<long long>(::getpid())) + "." + std::to_string(counter.fetch_add(1));
    const int fd = ::open(path->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    *err = errno;
    if (fd >= 0 || *err != EEXIST) return fd;
  }
  return -1;
}

namespace {
// Removes the temporary file unless the write was committed.
struct TempFileGuard {
  std::string path;
  int fd = -1;
  bool committed = false;
  ~TempFileGuard() {
    if (fd >= 0) ::close(fd);
    if (!committed) ::unlink(path.c_str());
  }
};
}  // namespace

void make_directories(const std::string& dir) {
  KESTREL_CHECK(!dir.empty(), "cannot create a folder with an empty path");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  KESTREL_CHECK(!ec, "cannot create folder ", dir, ": ", ec.message());
}

void remove_file_if_present(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  KESTREL_CHECK(!ec, "cannot remove ", path, ": ", ec.message());
}

LinkEnd follow_links(std::filesystem::path p, bool refuse_foreign) {
  namespace fs = std::filesystem;
  for (int hops = 0;; ++hops) {
    std::error_code ec;
    const fs::file_status link = fs::symlink_status(p, ec);
    if (ec || !fs::is_symlink(link)) return {p, {}};  // absent (to be created) or not a link
    if (hops == 40) return {p, "too many levels of symbolic links"};
    struct stat ls {};
    if (refuse_foreign && (::lstat(p.c_str(), &ls) != 0 || ls.st_uid != ::geteuid()))
      return {p, "the symbolic link " + p.string() +
                     " belongs to another user; outputs are written through links of this user's only"};
    const fs::path target = fs::read_symlink(p, ec);
    if (ec) return {p, "cannot read symbolic link " + p.string() + ": " + ec.message()};
    p = target.is_absolute() || !p.has_parent_path() ? target : p.parent_path() / target;
  }
}

std::string file_written_at(const std::string& path) {
  namespace fs = std::filesystem;
  // A link someone else made (say, planted at a predictable name in /tmp) is not followed: it
  // would aim our write at a file of their choosing.
  const LinkEnd end = follow_links(path, /*refuse_foreign=*/true);
  KESTREL_CHECK(end.problem.empty(), path, ": ", end.problem);
  const fs::path& p = end.path;
  std::error_code ec;
  const fs::file_status st = fs::status(p, ec);
  if (!ec && fs::exists(st) && !fs::is_regular_file(st)) {
    const char* kind = fs::is_directory(st)           ? "a folder"
                       : fs::is_character_file(st)    ? "a character device"
                       : fs::is_block_file(st)        ? "a block device"
                       : fs::is_fifo(st)              ? "a FIFO"
                       : fs::is_socket(st)            ? "a socket"
                                                      : "not a regular file";
    KESTREL_FAIL(path, (p.string() == path ? "" : " (" + p.string() + ")"), " is ", kind,
                 ", not a file: outputs are written whole, beside their name, then renamed over it");
  }
  return p.string();
}

void write_file_atomic(const std::uint8_t* data, std::size_t size, const std::string& link_or_path) {
  KESTREL_CHECK(!link_or_path.empty(), "cannot write a file with an empty path");
  const std::string path = file_written_at(link_or_path);
  const std::string dir = folder_of(path);
  TempFileGuard tmp;
  int err = 0;
  tmp.fd = create_exclusive(path + ".tmp.", 0644, &tmp.path, &err);
  if (tmp.fd < 0) {
    tmp.committed = true;  // nothing was created, so nothing to remove (and never someone else's)
    KESTREL_FAIL("cannot write ", path, ": cannot create ", tmp.path, " (", errno_text(err),
                 "); is directory ", dir, " there and writable?");
  }
  std::size_t done = 0;
  while (done < size) {
    const ssize_t put = ::write(tmp.fd, data + done, size - done);
    if (put < 0 && errno == EINTR) continue;
    KESTREL_CHECK(put > 0, "cannot write ", path, ": writing ", tmp.path, " failed after ", done,
                  " of ", size, " bytes: ", errno_text(errno));
    done += static_cast<std::size_t>(put);
  }
  KESTREL_CHECK(::fsync(tmp.fd) == 0, "cannot write ", path, ": fsync of ", tmp.path, " failed: ",
                errno_text(errno));
  const int fd = tmp.fd;
  tmp.fd = -1;
  KESTREL_CHECK(::close(fd) == 0, "cannot write ", path, ": closing ", tmp.path, " failed: ",
                errno_text(errno));
  KESTREL_CHECK(::rename(tmp.path.c_str(), path.c_str()) == 0, "cannot write ", path,
                ": renaming ", tmp.path, " over it failed: ", errno_text(errno));
  tmp.committed = true;
  // Make the rename itself durable. Some file systems cannot sync a directory (EINVAL): the data
  // is in place all the same, so only real I/O errors are reported.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const int rc = ::fsync(dfd);
    const int err = errno;
    ::close(dfd);
    KESTREL_CHECK(rc == 0 || err == EINVAL || err == EROFS, path,
                  " was written, but syncing directory ", dir, " failed: ", errno_text(err));
  }
}

}  // namespace kestrel::detail

namespace kestrel {
namespace {
// Creates and removes a file of our own named `prefix` + "<pid>.<n>": 0, or the system's error.
int probe_create(const std::string& prefix) {
  std::string probe;
  int err = 0;
  const int fd = detail::create_exclusive(prefix, 0600, &probe, &err);
  if (fd < 0) return err;
  ::close(fd);
  ::unlink(probe.c_str());
  return 0;
}
}  // namespace

void check_output_file(const std::string& given, const std::string& what) {
  if (given.empty()) return;
  std::string path;
  try {
    path = detail::file_written_at(given);  // a link is written through: check where it lands
  } catch (const Error& e) {  // a folder, device, FIFO or socket; a link loop or another user's link
    KESTREL_FAIL(what, " ", e.message());
  }
  std::error_code ec;
  const std::string dir = detail::folder_of(path);
  KESTREL_CHECK(std::filesystem::is_directory(dir, ec), what, " ", path, ": ",
                std::filesystem::exists(dir, ec) ? dir + " is not a folder" : "folder " + dir + " does not exist");
  // Probed with the name an atomic write's temporary file gets (longer than `path`'s own), so a
  // name too long for it is found now and not when the checkpoint is written.
  const int err = probe_create(path + ".tmp.");
  KESTREL_CHECK(err != ENAMETOOLONG, what, " ", path, ": the file name is too long (",
                std::filesystem::path(path).filename().string().size(), " characters; writing it needs a temporary "
                "file named <name>.tmp.<pid>.<n> beside it)");
  KESTREL_CHECK(err == 0, what, " ", path, ": cannot create files in folder ", dir, " (", detail::errno_text(err), ")");
}

namespace {
// Where writing to `path` lands: its absolute form with symbolic links followed, including a
// last component that links to a file not created yet (weakly_canonical stops at it).
std::filesystem::path write_target(const std::string& path, std::error_code& ec) {
  namespace fs = std::filesystem;
  const fs::path absolute = fs::absolute(path, ec);
  if (ec) return absolute;
  const detail::LinkEnd end = detail::follow_links(absolute, /*refuse_foreign=*/false);
  if (!end.problem.empty()) {
    ec = std::make_error_code(std::errc::too_many_symbolic_link_levels);  // or unreadable: no answer
    return end.path;
  }
  return fs::weakly_canonical(end.path, ec);
}
}  // namespace

bool same_file(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty()) return false;
  std::error_code ec;
  if (std::filesystem::exists(a, ec) && std::filesystem::exists(b, ec))
    return std::filesystem::equivalent(a, b, ec) && !ec;
  const std::filesystem::path pa = write_target(a, ec), pb = write_target(b, ec);
  return !ec && pa == pb;
}

void check_output_folder(const std::string& dir, const std::string& what) {
  KESTREL_CHECK(!dir.empty(), what, ": empty folder name");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  KESTREL_CHECK(!ec && std::filesystem::is_directory(dir), what, " ", dir, ": cannot create the folder",
                ec ? " (" + ec.message() + ")" : std::string(" (a file of that name is there)"));
  const int err = probe_create(dir + "/.kestrel-probe.");
  KESTREL_CHECK(err == 0, what, " ", dir, ": cannot create files in the folder (", detail::errno_text(err), ")");
}

}  // namespace kestrel
