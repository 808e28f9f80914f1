// Whole-file reads and atomic writes for the data and checkpoint code (private header).
//
// Contract: every failure is a kestrel::Error naming the path and the system's reason. An atomic
// write either replaces `path` with the complete new contents (data and directory entry synced)
// or leaves it untouched and removes its temporary file.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace kestrel::detail {

// An open regular file. The size is known before anything is read, so callers can refuse
// oversized inputs without reading them.
class InputFile {
 public:
  explicit InputFile(const std::string& path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  std::uint64_t size() const noexcept { return size_; }
  // Reads the whole file; raises when fewer bytes than size() can be read.
  std::vector<std::uint8_t> read_all();

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// The end of the chain of symbolic links at `p` (each relative target taken against its link's
// folder): `path` is what the chain names (p itself when it is no link); `problem` is empty, or
// says why following stopped (a loop of more than 40 links, an unreadable link, or, with
// refuse_foreign, a link owned by another user).
struct LinkEnd {
  std::filesystem::path path;
  std::string problem;
};
LinkEnd follow_links(std::filesystem::path p, bool refuse_foreign);

// Where writing to `path` lands: `path`, or, when it is a symbolic link, the file the chain of
// links ends at (the link stays a link and names the new contents, as an editor's save through
// a link does; a link owned by another user is refused, not followed). Raises when that file
// exists and is not a regular file (a device such as /dev/null, a FIFO, a socket, a folder): a
// temporary file renamed over it would replace it.
std::string file_written_at(const std::string& path);

// Writes `size` bytes to a new temporary file beside file_written_at(path), + ".tmp.<pid>.<n>"
// (created exclusively: never an existing file or a symbolic link planted there), flushes and
// fsyncs it, renames it over that file and fsyncs the directory. On failure the temporary file
// is removed and the file is left as it was.
void write_file_atomic(const std::uint8_t* data, std::size_t size, const std::string& path);

// Creates a new file `prefix` + "<pid>.<n>" of our own, open for writing with `mode`: never a
// name that is there already, so a symbolic link planted at a predictable name in a shared folder
// cannot redirect the write (O_EXCL | O_NOFOLLOW). Returns the descriptor, or -1 with the
// system's error in *err; *path is the name tried last.
int create_exclusive(const std::string& prefix, mode_t mode, std::string* path, int* err);

// Creates `dir` and its missing parents (nothing when it exists); an Error names the folder and
// the system's reason.
void make_directories(const std::string& dir);

// Removes the file at `path` when there is one (nothing when there is none); an Error names the
// file and the system's reason when it cannot be removed.
void remove_file_if_present(const std::string& path);

// strerror(errno) for messages.
std::string errno_text(int err);

}  // namespace kestrel::detail
