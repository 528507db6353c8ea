/* libchain_a.so (top level) -> libchain_b.so in chain/, found through
 * chain_a's DT_RUNPATH "$ORIGIN/chain". chain_a() == 321 proves all three
 * libraries of the chain were loaded and linked. */
int chain_b(void);

int chain_a(void)
{
    return chain_b() * 10 + 1; /* 32 * 10 + 1 = 321 */
}
