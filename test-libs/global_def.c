/* libglobal_def.so - defines what libglobal_user.so uses without naming it
 * in DT_NEEDED: loaded with RTLD_GLOBAL (minld: Loader::global(true)), its
 * definitions are found by later loads. global_fn() == 7,
 * global_value == 6. */
int global_value = 6;

int global_fn(void)
{
    return 7;
}
