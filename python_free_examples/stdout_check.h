// A program whose standard output could not be written (a full disk, /dev/full, a file system
// gone read-only) fails: without this, printf's errors go unseen and the program exits 0 with its
// table, JSON lines or report lost. Call fail_on_unwritable_stdout(name) first thing in main: at
// exit (a return from main or std::exit) it flushes stdout and, if any write failed, says so on
// stderr and ends the program with status 1, as coreutils' close_stdout does. A pipe closed by
// its reader still ends the program by SIGPIPE, as usual.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace kestrel::programs {

namespace detail {
inline const char*& stdout_program_name() {
  static const char* name = "program";
  return name;
}

inline void check_stdout_at_exit() {
  errno = 0;
  std::cout.flush();  // synchronised with stdio (the default): its writes are stdout's
  const bool failed = std::fflush(stdout) != 0 || std::ferror(stdout) != 0 || !std::cout;
  if (!failed) return;
  const int err = errno;
  std::fprintf(stderr, "%s: could not write standard output%s%s\n", stdout_program_name(), err != 0 ? ": " : "",
               err != 0 ? std::strerror(err) : "");
  std::_Exit(1);  // in an exit handler: std::exit again would be undefined
}
}  // namespace detail

inline void fail_on_unwritable_stdout(const char* program) {
  detail::stdout_program_name() = program;
  (void)std::atexit(detail::check_stdout_at_exit);
}

}  // namespace kestrel::programs
