/* libnested_ifunc_back_user.so - DT_NEEDED libnested_ifunc_back.so, whose
 * ifunc resolver tries to open this library (refused: see there). */
int nested_ifunc_back_base(void);

int nested_ifunc_back_user_value(void)
{
    return nested_ifunc_back_base() + 1;
}
