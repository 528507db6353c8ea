/* libdl_backtrace.so - takes backtraces inside itself for tests/preload.rs
 * (case `backtrace` of dl_host2): bt_outer -> bt_inner -> backtrace(), and
 * bt_via_hidden -> bt_hidden (static: no dynamic symbol, so glibc prints
 * its frame as `file(+0xoff)`) -> bt_inner. The frames are named by
 * backtrace_symbols and backtrace_symbols_fd, glibc's or the drop-in's. */
#include <execinfo.h>

__attribute__((noinline)) int bt_inner(void **buf, int max)
{
    int n = backtrace(buf, max);
    __asm__ volatile("" ::: "memory"); /* no tail call */
    return n;
}

__attribute__((noinline)) int bt_outer(void **buf, int max)
{
    int n = bt_inner(buf, max);
    __asm__ volatile("" ::: "memory");
    return n;
}

static __attribute__((noinline)) int bt_hidden(void **buf, int max)
{
    int n = bt_inner(buf, max);
    __asm__ volatile("" ::: "memory");
    return n;
}

__attribute__((noinline)) int bt_via_hidden(void **buf, int max)
{
    int n = bt_hidden(buf, max);
    __asm__ volatile("" ::: "memory");
    return n;
}
