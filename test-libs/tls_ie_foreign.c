/* libtls_ie_foreign.so - DT_NEEDED libtls_owner.so (RUNPATH $ORIGIN) and
 * initial-exec access to its general-dynamic variable: R_X86_64_TPOFF64
 * against tls_shared_counter, defined in libtls_owner.so, whose own code
 * reaches it through __tls_get_addr. glibc places libtls_owner.so's block
 * in static TLS when it relocates this library (if no thread has had it
 * allocated dynamically before); so does minld.
 *   tls_ie_foreign_addr() == tls_owner_addr() in every thread. */
extern __thread int tls_shared_counter __attribute__((tls_model("initial-exec")));

int *tls_ie_foreign_addr(void)
{
    return &tls_shared_counter;
}
