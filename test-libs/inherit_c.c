/* inherit/libinherit_c.so - the leaf of the RPATH inheritance chain; only
 * a search through an RPATH that names inherit/ finds it. inherit_c() == 7. */
int inherit_c(void)
{
    return 7;
}
