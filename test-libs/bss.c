/* libbss.so - a large .bss: the writable PT_LOAD has p_memsz > p_filesz by
 * many pages. The loader must zero the tail of the last file-backed page and
 * map anonymous zero pages for the rest (glibc: memset + MAP_ANONYMOUS).
 *   bss_big[300000]  exported, must be all zero: bss_all_zero() == 1.
 *   bss_data         initialised data next to it: 7.
 *   bss_small_tail() reads bss_tail, a small zero-initialised int placed
 *                    right after .data (same partial page): must be 0. */
char bss_big[300000];
int bss_data = 7;
/* Exported so gcc cannot fold reads of a never-written static to 0. */
int bss_tail;

int bss_all_zero(void)
{
    for (unsigned i = 0; i < sizeof bss_big; i++)
        if (bss_big[i] != 0)
            return 0;
    return 1;
}

int bss_small_tail(void)
{
    return bss_tail;
}
