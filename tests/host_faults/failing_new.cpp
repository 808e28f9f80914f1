// Replaces the global operator new (and its delete) for this executable; see failing_new.h.
#include "failing_new.h"

#include <cstdlib>
#include <new>

namespace {
thread_local long requests_before_failure = -1;  // < 0: no failure requested
}  // namespace

namespace kestrel_test {
void fail_new_after(long n) noexcept { requests_before_failure = n; }
bool new_failure_pending() noexcept { return requests_before_failure >= 0; }
}  // namespace kestrel_test

void* operator new(std::size_t n) {
  if (requests_before_failure >= 0 && requests_before_failure-- == 0) throw std::bad_alloc();
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
// GCC cannot see that operator new above is malloc too once it inlines the pair (asan preset).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
