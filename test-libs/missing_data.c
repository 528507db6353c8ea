/* libmissing_data.so - reads minld_no_such_data, which no library defines.
 * The reference is a GLOB_DAT, resolved at load time even with RTLD_LAZY, so
 * loading must fail with "undefined symbol: minld_no_such_data". */
extern int minld_no_such_data;

int missing_data_read(void)
{
    return minld_no_such_data;
}
