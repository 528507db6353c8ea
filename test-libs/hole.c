/* libhole.so - PT_LOAD segments with gaps between them.
 *
 * Linked with -z separate-code -z max-page-size=0x10000
 * -z common-page-size=0x1000, so consecutive segments are 64 KiB apart in
 * vaddr but each is only a few 4 KiB pages long: after page rounding the end
 * of segment i is below the start of segment i+1. glibc maps the whole span
 * from the first segment's file mapping and then mprotects each hole
 * PROT_NONE; the loader must do the same (or otherwise leave the holes
 * inaccessible).
 *   hole_fn() == 31 + hole_data (= 42). */
int hole_data = 11;

int hole_fn(void)
{
    return 31 + hole_data;
}
