/* librace_good.so / librace_bad.so - one source built twice: the good copy
 * with BIND_NOW and RELRO (Policy::strict passes it), the bad one linked
 * lazily (a NotBindNow finding). race_which() says which file was loaded.
 *   race_which()  1 in the good copy, 2 in the bad one */
#ifndef RACE_WHICH
#error "RACE_WHICH must be defined"
#endif

int race_which(void)
{
    return RACE_WHICH;
}
