// Replaces the global operator new and delete (every plain, array and nothrow form, so that all
// of them meet in malloc and free, also under AddressSanitizer) for this executable; see
// failing_new.h.
#include "failing_new.h"

#include <cstdlib>
#include <new>

namespace {
thread_local long requests_before_failure = -1;  // < 0: no failure requested
thread_local bool keep_failing = false;          // every request after the first failure fails too
thread_local long failures_raised = 0;
}  // namespace

namespace kestrel_test {
void fail_new_after(long n, bool and_every_later_one) noexcept {
  requests_before_failure = n;
  keep_failing = and_every_later_one;
  failures_raised = 0;
}
bool new_failure_pending() noexcept { return requests_before_failure >= 0 && failures_raised == 0; }
}  // namespace kestrel_test

void* operator new(std::size_t n) {
  if (requests_before_failure >= 0 && requests_before_failure-- == 0) {
    ++failures_raised;
    if (keep_failing) requests_before_failure = 0;
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return ::operator new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return ::operator new(n, t); }
// GCC cannot see that operator new above is malloc too once it inlines the pair (asan preset).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
