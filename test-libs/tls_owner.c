/* libtls_owner.so - exports thread-local variables that libtls_user.so
 * reads and writes (general dynamic: R_X86_64_DTPMOD64 / DTPOFF64 against
 * its own symbols here, and against these symbols in libtls_user.so).
 *   tls_shared_counter   __thread int, initial value 5 (.tdata)
 *   tls_shared_zero      __thread long, 0 (.tbss)
 *   tls_owner_counter()  this thread's tls_shared_counter
 *   tls_owner_addr()     &tls_shared_counter in this thread
 *   tls_owner_zero_addr() &tls_shared_zero in this thread */
__thread int tls_shared_counter __attribute__((tls_model("global-dynamic"))) = 5;
__thread long tls_shared_zero __attribute__((tls_model("global-dynamic")));

int tls_owner_counter(void)
{
    return tls_shared_counter;
}

int *tls_owner_addr(void)
{
    return &tls_shared_counter;
}

long *tls_owner_zero_addr(void)
{
    return &tls_shared_zero;
}
