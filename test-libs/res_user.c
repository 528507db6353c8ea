/* libres_user.so - needs libres_def.so and libc, and refers to a versioned
 * symbol (the old version, VER_1), a protected one, and one minld
 * interposes (_dl_find_object, which minld answers for its own objects),
 * each twice: by address (an R_X86_64_64 in data, bound when relocated) and by a call
 * through its lazily bound PLT (a JUMP_SLOT).
 *   res_*_addr()  the address the R_X86_64_64 bound
 *   res_*_call()  calls the function through the PLT */
extern void *res_versioned_old(void);
__asm__(".symver res_versioned_old, res_versioned@VER_1");
extern void *res_protected(void);
extern int _dl_find_object(void *pc, void *result);

/* Data words (volatile: not folded into GOT loads), not GOT words,
 * through which ld would then make the calls instead of the PLT. */
static void *volatile res_versioned_ptr = (void *)&res_versioned_old;
static void *volatile res_protected_ptr = (void *)&res_protected;
static void *volatile _dl_find_object_ptr = (void *)&_dl_find_object;

void *res_versioned_addr(void)
{
    return res_versioned_ptr;
}

void *res_versioned_call(void)
{
    return res_versioned_old();
}

void *res_protected_addr(void)
{
    return res_protected_ptr;
}

void *res_protected_call(void)
{
    return res_protected();
}

void *res_interposed_addr(void)
{
    return _dl_find_object_ptr;
}

/* _dl_find_object on this function's own code: 0 when found. The result
 * buffer is larger than glibc's struct dl_find_object. */
int res_interposed_call(void)
{
    unsigned long long result[32];
    return _dl_find_object((void *)&res_interposed_call, result);
}
