/* liblazy_caller.so - built without -z now, so its calls to
 * liblazy_callee.so and to libc go through lazily bound PLT entries: the
 * first call of each reaches the loader's resolver with the arguments in
 * registers, which must arrive intact.
 *   lazy_call_sum8()   lazy_sum8(1..8) == 36
 *   lazy_call_mix()    lazy_mix(1..6, 0.7, 0.8) == 8654321
 *   lazy_call_format(buf, n)  snprintf(buf, n, "%d %.2f %s %.1f", 42, 2.5,
 *                     "ok", -1.0) (variadic: %al counts the vector
 *                     registers used)
 *   lazy_missing()     calls a function nothing defines: with lazy
 *                      binding the load succeeds, the call ends the
 *                      process. */
#include <stdio.h>

extern double lazy_sum8(double, double, double, double, double, double, double, double);
extern long lazy_mix(long, long, long, long, long, long, double, double);
extern int lazy_nowhere(void);

double lazy_call_sum8(void)
{
    return lazy_sum8(1, 2, 3, 4, 5, 6, 7, 8);
}

long lazy_call_mix(void)
{
    return lazy_mix(1, 2, 3, 4, 5, 6, 0.7, 0.8);
}

int lazy_call_format(char *buf, int n)
{
    return snprintf(buf, (size_t)n, "%d %.2f %s %.1f", 42, 2.5, "ok", -1.0);
}

int lazy_missing(void)
{
    return lazy_nowhere();
}
