/* libtls_ie.so - initial-exec TLS on the library's own block:
 * R_X86_64_TPOFF64 against tls_ie_var and against the block (symbol 0),
 * DF_STATIC_TLS (FLAGS STATIC_TLS). glibc's dlopen places the block in its
 * surplus static TLS; so does minld (through glibc).
 *   .tdata: tls_ie_var == 3, tls_ie_name == "minld-ie" (a pointer: a
 *   RELATIVE relocation inside the TLS image);
 *   .tbss: tls_ie_zero, 16 longs of 0.
 * tls_ie_gd.c has two more variables of the block, reached dynamically. */
#include <string.h>

__thread int tls_ie_var __attribute__((tls_model("initial-exec"))) = 3;
static __thread const char *tls_ie_name __attribute__((tls_model("initial-exec"))) = "minld-ie";
static __thread long tls_ie_zero[16] __attribute__((tls_model("initial-exec")));

int tls_ie_get(void)
{
    return tls_ie_var;
}

void tls_ie_set(int v)
{
    tls_ie_var = v;
}

int *tls_ie_addr(void)
{
    return &tls_ie_var;
}

/* 0 when this thread's block holds the initial values; else which part
 * differs: 1 tls_ie_var, 2 tls_ie_name, 3 + i tls_ie_zero[i]. */
int tls_ie_check_initial(void)
{
    if (tls_ie_var != 3)
        return 1;
    if (tls_ie_name == 0 || strcmp(tls_ie_name, "minld-ie") != 0)
        return 2;
    for (int i = 0; i < 16; i++)
        if (tls_ie_zero[i] != 0)
            return 3 + i;
    return 0;
}

/* Writes seed-derived values into every part of this thread's block. */
void tls_ie_scribble(int seed)
{
    tls_ie_var = seed;
    tls_ie_name = "scribbled";
    for (int i = 0; i < 16; i++)
        tls_ie_zero[i] = (long)seed * 100 + i;
}

/* 0 when this thread's block holds what tls_ie_scribble(seed) wrote. */
int tls_ie_check_scribbled(int seed)
{
    if (tls_ie_var != seed)
        return 1;
    if (strcmp(tls_ie_name, "scribbled") != 0)
        return 2;
    for (int i = 0; i < 16; i++)
        if (tls_ie_zero[i] != (long)seed * 100 + i)
            return 3 + i;
    return 0;
}
