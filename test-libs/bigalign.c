/* libbigalign.so - PT_LOAD segments with p_align 0x200000 (2 MiB), linked
 * with -z max-page-size=0x200000 -z separate-code. The loader must reserve
 * an address range aligned to 2 MiB (glibc >= 2.35 over-allocates and aligns
 * the first mapping) and map each segment at the right offset.
 *   bigalign_fn()          returns 23 + bigalign_data[1] (= 25).
 *   bigalign_data[4]       writable initialised data {1, 2, 3, 4}.
 *   bigalign_bss[100000]   .bss array (exported): bigalign_bss_zero() == 1.
 *   bigalign_base_ok()     1 if the load base (the address of the ELF header,
 *                          __ehdr_start, which the first PT_LOAD maps at
 *                          vaddr 0) is 2 MiB aligned, as p_align asks. */
#include <stdint.h>

int bigalign_data[4] = { 1, 2, 3, 4 };
/* Exported so gcc cannot fold reads of a never-written static to 0. */
char bigalign_bss[100000];

int bigalign_fn(void)
{
    return 23 + bigalign_data[1];
}

/* Linker-provided symbol: the ELF header as mapped in memory. */
extern const char __ehdr_start[] __attribute__((visibility("hidden")));

int bigalign_base_ok(void)
{
    return ((uintptr_t)__ehdr_start & 0x1fffff) == 0;
}

int bigalign_bss_zero(void)
{
    for (unsigned i = 0; i < sizeof bigalign_bss; i++)
        if (bigalign_bss[i] != 0)
            return 0;
    return 1;
}
