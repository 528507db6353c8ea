/* libinherit_top.so - DT_RPATH $ORIGIN/inherit, needs
 * inherit/libinherit_opener.so; the program dl_rpath2 needs only this
 * one, so glibc's loader of libinherit_opener.so is this library. */
int inherit_opener_open_d(void);

int inherit_top_open_d(void)
{
    return inherit_opener_open_d();
}
