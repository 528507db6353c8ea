/* libifunc_provider.so - exports an ifunc whose resolver, and a
 * constructor, leave a mark: a library that binds `provided` must not run
 * the resolver before its code may run (Loader::link never, Loader::prepare
 * only at Prepared::run). */
int resolver_ran;
int ctor_ran;

static int impl(int x)
{
    return x + 1;
}

static void *resolve_provided(void)
{
    resolver_ran++;
    return (void *)impl;
}

int provided(int) __attribute__((ifunc("resolve_provided")));

__attribute__((constructor)) static void init(void)
{
    ctor_ran++;
}
