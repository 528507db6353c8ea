/* libweak.so - weak symbols.
 *
 *   weak_missing_fn / weak_missing_data are weak UNDEFINED references that
 *   nothing defines: the loader must resolve them to 0 instead of failing,
 *   so weak_fn_is_null() == 1 and weak_data_is_null() == 1.
 *   weak_defined is a weak DEFINITION (STB_WEAK, defined): returns 5 and must
 *   be found by lookups like a global symbol. */
extern int weak_missing_fn(void) __attribute__((weak));
extern int weak_missing_data __attribute__((weak));

int weak_fn_is_null(void)
{
    return weak_missing_fn == 0;
}

int weak_data_is_null(void)
{
    return &weak_missing_data == 0;
}

__attribute__((weak))
int weak_defined(void)
{
    return 5;
}
