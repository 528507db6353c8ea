/* librpath_a.so - like libchain_a.so but finds chain/libchain_b.so through the
 * old-style DT_RPATH "$ORIGIN/chain" (--disable-new-dtags). rpath_a() == 321. */
int chain_b(void);

int rpath_a(void)
{
    return chain_b() * 10 + 1; /* 321 */
}
