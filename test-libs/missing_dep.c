/* libmissing_dep.so - has DT_NEEDED "libminld_nonexistent.so", a library that
 * exists nowhere on the search path (build.rs links against a throw-away stub
 * in a scratch directory). Loading must fail with a "cannot open shared
 * object file" style error; glibc dlopen fails too. */
int minld_nonexistent_fn(void);

/* Would return 1 if it could ever be loaded (the stub returns 0). */
int missing_dep_fn(void)
{
    return minld_nonexistent_fn() + 1;
}
