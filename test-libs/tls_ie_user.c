/* libtls_ie_user.so - DT_NEEDED libtls_ie.so (RUNPATH $ORIGIN), and an
 * undefined function nobody defines: with bind-now its load fails after
 * libtls_ie.so was relocated, that is after libtls_ie.so's block was
 * reserved in glibc's static TLS. Everything must be given back. */
extern int tls_ie_get(void);
extern int minld_tls_ie_missing(void);

int tls_ie_user(void)
{
    return tls_ie_get() + minld_tls_ie_missing();
}
