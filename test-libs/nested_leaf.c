/* libnested_leaf.so - what the constructors and ifunc resolvers of the
 * nested_* test-libs open through minld: nested_leaf_value() == 41; its
 * init and fini functions count themselves in libnested_hook.so
 * (nested_leaf_inits, nested_leaf_finis). */
extern int nested_leaf_inits;
extern int nested_leaf_finis;

__attribute__((constructor)) static void leaf_init(void)
{
    nested_leaf_inits++;
}

__attribute__((destructor)) static void leaf_fini(void)
{
    nested_leaf_finis++;
}

int nested_leaf_value(void)
{
    return 41;
}
