/* dl_rpath2 - RUNPATH $ORIGIN, needs libinherit_top.so, whose dependency
 * inherit/libinherit_opener.so dlopens "libinherit_d.so": glibc finds it
 * through the RPATH of the opener's loader (libinherit_top.so). Prints
 * "d 7"; run by tests/preload.rs under glibc and through the drop-in. */
#include <stdio.h>

int inherit_top_open_d(void);

int main(void)
{
    int d = inherit_top_open_d();
    printf("d %d\n", d);
    return d == 7 ? 0 : 1;
}
