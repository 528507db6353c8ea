/* libtls_ie.so - initial-exec TLS on the library's own exported variable:
 * R_X86_64_TPOFF64 against tls_ie_var and DF_STATIC_TLS (FLAGS STATIC_TLS).
 * glibc's dlopen loads it into its surplus static TLS; minld refuses it with
 * an Error::Relocation naming the file and tls_ie_var.
 *   tls_ie_get() == 3 in every thread (under glibc). */
__thread int tls_ie_var __attribute__((tls_model("initial-exec"))) = 3;

int tls_ie_get(void)
{
    return tls_ie_var;
}
