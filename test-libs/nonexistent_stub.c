/* Stub for libminld_nonexistent.so: only used at link time to give
 * libmissing_dep.so its DT_NEEDED; build.rs builds it into a scratch
 * directory that is not part of the test-libs output. */
int minld_nonexistent_fn(void)
{
    return 0;
}
