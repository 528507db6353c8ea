/* libctor_mid.so - needs libctor_base.so. Proves that a dependency's
 * constructors run before its dependents' and that .init_array entries run in
 * priority order: constructor(101) ("mid:ctor101") before a plain constructor
 * ("mid:ctor"). Destructor records "mid:dtor". */
void order_record(const char *event);

__attribute__((constructor(101)))
static void mid_ctor101(void)
{
    order_record("mid:ctor101");
}

__attribute__((constructor))
static void mid_ctor(void)
{
    order_record("mid:ctor");
}

__attribute__((destructor))
static void mid_dtor(void)
{
    order_record("mid:dtor");
}

int ctor_mid_fn(void)
{
    return 1;
}
