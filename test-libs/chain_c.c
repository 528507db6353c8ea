/* chain/libchain_c.so - end of the dependency chain. */
int chain_c(void)
{
    return 3;
}
