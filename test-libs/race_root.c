/* librace_root.so - DT_NEEDED librace_good.so (RUNPATH $ORIGIN), BIND_NOW
 * and RELRO: the file found under that name is swapped while loading.
 *   race_root_which()  race_which() of the dependency loaded */
extern int race_which(void);

int race_root_which(void)
{
    return race_which();
}
