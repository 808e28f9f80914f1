// The global operator new of kestrel_host_fault_tests (failing_new.cpp), which can be told to
// raise std::bad_alloc on a chosen request of the calling thread.
#pragma once

namespace kestrel_test {

// The n-th operator new from now on this thread raises std::bad_alloc (n = 0: the next one);
// n < 0: none does. The failure is used up once raised, unless `and_every_later_one`: then every
// later request fails too (memory that stays exhausted), until the next call.
void fail_new_after(long n, bool and_every_later_one = false) noexcept;

// True while a requested failure has not been raised yet (the code under test made fewer than
// n + 1 requests).
bool new_failure_pending() noexcept;

}  // namespace kestrel_test
