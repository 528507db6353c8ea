/* libpacked.so - linked with -z max-page-size=16 (and BIND_NOW, RELRO: a
 * strict policy finds nothing else wrong with it): every PT_LOAD has
 * p_align 0x10 and all of them lie in the first page, so mapping each with
 * its own protections leaves that page with the last one's (read-write),
 * and its constructor faults when called. minld refuses the file
 * (Error::AlignBelowPage). packed_value() would return 42 after the
 * constructor ran. */

static int packed_state;

__attribute__((constructor)) static void packed_init(void)
{
    packed_state = 42;
}

int packed_value(void)
{
    return packed_state;
}

/* A pointer in data: a RELATIVE relocation into the shared page. */
int (*packed_ptr)(void) = packed_value;
