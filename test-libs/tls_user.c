/* libtls_user.so - DT_NEEDED libtls_owner.so (RUNPATH $ORIGIN); reaches the
 * owner's thread-local variables through R_X86_64_DTPMOD64 / DTPOFF64
 * against libtls_owner.so's symbols (module id of the *dependency*), and has
 * a PT_TLS block of its own, so two modules of minld have TLS at once.
 *   tls_user_bump()       ++tls_shared_counter (owner's) in this thread:
 *                         6, 7, ... from the owner's initial 5
 *   tls_user_addr()       &tls_shared_counter as this library sees it: must
 *                         equal tls_owner_addr() in the same thread
 *   tls_user_zero_addr()  &tls_shared_zero, must equal tls_owner_zero_addr()
 *   tls_user_own()        this library's own __thread int (77)
 *   tls_user_own_addr()   its address */
extern __thread int tls_shared_counter;
extern __thread long tls_shared_zero;

__thread int tls_user_own_value __attribute__((tls_model("global-dynamic"))) = 77;

int tls_user_bump(void)
{
    return ++tls_shared_counter;
}

int *tls_user_addr(void)
{
    return &tls_shared_counter;
}

long *tls_user_zero_addr(void)
{
    return &tls_shared_zero;
}

int tls_user_own(void)
{
    return tls_user_own_value;
}

int *tls_user_own_addr(void)
{
    return &tls_user_own_value;
}
