/* libnested_top.so - DT_NEEDED libnested_first.so (whose constructor
 * opens libnested_top_user.so, which needs this library); its constructor
 * counts itself in nested_top_inits (libnested_hook.so): 1 after the
 * outer open, whoever ran it. */
extern int nested_top_inits;

int nested_first_result(void);

__attribute__((constructor)) static void top_init(void)
{
    nested_top_inits++;
}

int nested_top_value(void)
{
    return nested_first_result();
}
