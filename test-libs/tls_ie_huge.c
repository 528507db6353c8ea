/* libtls_ie_huge.so - a 1 MiB initial-exec TLS block (aligned to 64):
 * more than glibc's surplus static TLS holds, so glibc's dlopen fails
 * with "cannot allocate memory in static TLS block", and minld's load
 * fails with StaticTlsFull giving the size and alignment. */
__thread char tls_ie_huge[1 << 20] __attribute__((tls_model("initial-exec"), aligned(64)));

char *tls_ie_huge_addr(void)
{
    return tls_ie_huge;
}
