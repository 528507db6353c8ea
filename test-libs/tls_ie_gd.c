/* Part of libtls_ie.so / libtls_ie_desc.so: variables of the same TLS
 * block reached without the initial-exec model, through __tls_get_addr
 * (DTPMOD64 + DTPOFF64 against tls_ie_gd_var; a DTPMOD64 without a symbol
 * for the local-dynamic tls_ie_local) or, with -mtls-dialect=gnu2, TLS
 * descriptors. Neither is touched by initial-exec code (the linker would
 * turn these accesses into initial-exec ones), so this is the library's
 * dynamic view of the block the initial-exec code in tls_ie.c uses.
 *   tls_ie_gd_var == 5, tls_ie_local == 9 initially in every thread. */
__thread int tls_ie_gd_var = 5;
static __thread int tls_ie_local = 9;

int *tls_ie_gd_addr(void)
{
    return &tls_ie_gd_var;
}

int *tls_ie_local_addr(void)
{
    return &tls_ie_local;
}
