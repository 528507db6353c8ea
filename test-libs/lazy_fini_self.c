/* liblazy_fini_self.so - lazily bound (-z lazy), its destructor calls
 * lazy_fini_helper, one of its own exported functions, for the first time
 * through the PLT: bound while the library is being unloaded. The result
 * goes to a host-given hook. */
static void (*hook)(int);

void lazy_fini_set_hook(void (*h)(int))
{
    hook = h;
}

int lazy_fini_helper(void)
{
    return 41;
}

__attribute__((destructor)) static void fini(void)
{
    if (hook != 0)
        hook(lazy_fini_helper() + 1);
}
