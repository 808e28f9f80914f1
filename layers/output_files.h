// Checking, before long work, that its output files can be written when the work ends: a
// training run, an experiment or a benchmark should not run for an hour and then fail on a
// missing or read-only folder.
#pragma once

#include <string>

namespace kestrel {

// A file can be created at `path` later: its folder exists and accepts a new file (a probe file
// named as an atomic write's temporary file, <path>.tmp.<pid>.<n>, is created exclusively and
// removed at once, so a name too long for it is refused too; nothing is written at `path`), and
// `path` is not a folder, a device, a FIFO or a socket. A symbolic link is checked where it
// leads (outputs are written through links). An empty path passes (no output asked for). Raises
// kestrel::Error naming `what` (e.g. "--checkpoint"), the path and the system's reason.
void check_output_file(const std::string& path, const std::string& what);

// Whether `a` and `b` name the same file: the same existing file (hard and symbolic links
// included), or, where either does not exist yet, the same absolute normalised path once
// symbolic links are followed (a link to a file not created yet included). An empty path names
// no file.
bool same_file(const std::string& a, const std::string& b);

// `dir` exists, created with its parents when missing, and accepts new files (probed as above).
void check_output_folder(const std::string& dir, const std::string& what);

}  // namespace kestrel
