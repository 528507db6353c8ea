/* chain/libchain_b.so -> chain/libchain_c.so, found through chain_b's own
 * DT_RUNPATH "$ORIGIN" (i.e. relative to chain_b, not to the loading object). */
int chain_c(void);

int chain_b(void)
{
    return chain_c() * 10 + 2; /* 3 * 10 + 2 = 32 */
}
