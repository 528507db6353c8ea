/* libtextrel.so - a text relocation (DT_TEXTREL / DF_TEXTREL).
 *
 * The inline asm places an absolute 8-byte pointer to textrel_target inside
 * .text, so the linker (with -z notext) emits a dynamic relocation (an
 * R_X86_64_64 against textrel_target) whose target is in a read-only,
 * executable segment. The loader must make that page writable, apply the
 * relocation, and restore the protection (glibc mprotects it RW and back).
 *   textrel_ptr() returns the relocated .text word: must equal &textrel_target.
 *   textrel_target is 99. */
int textrel_target = 99;

__asm__(
    "    .text\n"
    "    .p2align 3\n"
    "    .type textrel_word, @object\n"
    "textrel_word:\n"
    "    .quad textrel_target\n"
    "    .size textrel_word, 8\n");

void *textrel_ptr(void)
{
    void *p;
    /* Read the word with a PC-relative load: it lives in .text. */
    __asm__("movq textrel_word(%%rip), %0" : "=r"(p));
    return p;
}
