/* libtls.so - thread-local storage, general dynamic model (-fPIC default for
 * a shared object): tls_counter is accessed through __tls_get_addr with
 * R_X86_64_DTPMOD64 / R_X86_64_DTPOFF64 relocations; the library has a
 * PT_TLS segment (initialised .tdata plus .tbss).
 *   tls_bump()     increments this thread's tls_counter and returns it
 *                  (first call in a thread: 1).
 *   tls_init_value() returns this thread's copy of tls_initialised (100). */
__attribute__((tls_model("global-dynamic")))
__thread int tls_counter;

__attribute__((tls_model("global-dynamic")))
__thread int tls_initialised = 100;

int tls_bump(void)
{
    return ++tls_counter;
}

int tls_init_value(void)
{
    return tls_initialised;
}
