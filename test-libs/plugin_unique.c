/* libplugin_unique_a.so / libplugin_unique_b.so - one source built twice,
 * each defining the STB_GNU_UNIQUE object plugin_unique (what g++ makes of
 * an inline variable or a template's static member; written here in
 * assembly, so no libstdc++ is needed) and reading it through its GOT.
 *   plugin_unique_addr()  the address its reference to plugin_unique bound */
__asm__(".section .bss.plugin_unique,\"aw\",@nobits\n"
        ".globl plugin_unique\n"
        ".type plugin_unique, @gnu_unique_object\n"
        ".size plugin_unique, 4\n"
        ".balign 4\n"
        "plugin_unique:\n"
        ".zero 4\n"
        ".previous\n");

extern int plugin_unique;

int *plugin_unique_addr(void)
{
    return &plugin_unique;
}
