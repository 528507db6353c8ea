/* libglobal_user.so - under-linked: uses global_fn and global_value of
 * libglobal_def.so without a DT_NEEDED entry for it, so it links only if
 * that library is in the global scope (glibc: loaded RTLD_GLOBAL before).
 * use_global() == 42. */
extern int global_value;
int global_fn(void);

int use_global(void)
{
    return global_fn() * global_value;
}
