/* libifunc_consumer.so - binds the ifunc of its dependency
 * libifunc_provider.so (GLOB_DAT / JUMP_SLOT to an STT_GNU_IFUNC symbol of
 * another object minld loads). */
int provided(int);

int consume(int x)
{
    return provided(x) * 2;
}
