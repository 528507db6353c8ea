/* librelocs.so - needs libbasic.so (DT_NEEDED, found via RUNPATH $ORIGIN).
 *
 * Exercises the common x86-64 relocation kinds against another library:
 *   R_X86_64_64 + addend : relocs_text_plus3 = basic_text + 3      -> "defgh"
 *   R_X86_64_64, addend 0: relocs_add_fn = basic_add (fn ptr in data)
 *   R_X86_64_GLOB_DAT    : relocs_read_counter() reads basic_counter via GOT
 *   R_X86_64_JUMP_SLOT   : relocs_call_add() calls basic_add via PLT
 *   R_X86_64_RELATIVE    : relocs_local_ptr points at our own static data
 *   libc IFUNCs          : strlen / memcpy resolve to glibc IFUNC symbols, so
 *                          the loader must call the host IFUNC resolvers. */
#include <stddef.h>
#include <string.h>

extern int basic_counter;
extern char basic_text[];
int basic_add(int a, int b);

/* R_X86_64_64 against basic_text with addend 3. */
char *relocs_text_plus3 = basic_text + 3;

/* R_X86_64_64 against basic_add with addend 0 (function pointer in data). */
int (*relocs_add_fn)(int, int) = basic_add;

/* R_X86_64_RELATIVE: pointer to our own static data. */
static int relocs_local_value = 1234;
int *relocs_local_ptr = &relocs_local_value;

/* GLOB_DAT: returns basic_counter (41 right after load). */
int relocs_read_counter(void)
{
    return basic_counter;
}

/* JUMP_SLOT: calls basic_add through the PLT. */
int relocs_call_add(int a, int b)
{
    return basic_add(a, b);
}

/* Returns relocs_text_plus3: "defgh". */
const char *relocs_text_plus3_value(void)
{
    return relocs_text_plus3;
}

/* Calls libc strlen (an IFUNC in glibc). */
size_t relocs_strlen(const char *s)
{
    return strlen(s);
}

/* Copies n bytes with libc memcpy (an IFUNC in glibc); returns dst. */
void *relocs_memcpy(void *dst, const void *src, size_t n)
{
    return memcpy(dst, src, n);
}

/* Calls basic_add through the function pointer stored in data. */
int relocs_via_fnptr(int a, int b)
{
    return relocs_add_fn(a, b);
}

/* Reads through the RELATIVE-relocated pointer: 1234. */
int relocs_local_value_via_ptr(void)
{
    return *relocs_local_ptr;
}
