/* libres_unique_a.so / libres_unique_b.so - one source built twice, each
 * defining res_unique as STB_GNU_UNIQUE (written in assembly: a C compiler
 * makes only objects unique; this one is code, so that a PLT call can
 * reach it), and referring to it through its own GOT.
 *   res_unique()       returns its own address (which copy ran)
 *   res_unique_here()  the address its GOT reference to res_unique bound */
__asm__(".text\n"
        ".globl res_unique\n"
        ".type res_unique, @gnu_unique_object\n"
        "res_unique:\n"
        ".Lres_unique_self:\n"
        "    leaq .Lres_unique_self(%rip), %rax\n"
        "    ret\n"
        ".size res_unique, .-res_unique\n");

extern void *res_unique(void);

void *res_unique_here(void)
{
    return (void *)&res_unique;
}
