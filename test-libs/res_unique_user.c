/* libres_unique_user.so - needs libres_unique_b.so and refers to its
 * STB_GNU_UNIQUE res_unique twice: by address (an R_X86_64_64 in data,
 * bound when relocated) and by a call through its lazily bound PLT (a JUMP_SLOT).
 *   res_unique_addr()  the address the R_X86_64_64 bound
 *   res_unique_call()  calls res_unique through the PLT (which copy ran) */
extern void *res_unique(void);

/* A data word (volatile: not folded into a GOT load), not a GOT word,
 * through which ld would then make the call instead of the PLT. */
static void *volatile res_unique_ptr = (void *)&res_unique;

void *res_unique_addr(void)
{
    return res_unique_ptr;
}

void *res_unique_call(void)
{
    return res_unique();
}
