/* liblazy_callee.so - functions libLazy_caller calls through its PLT.
 *   lazy_sum8(a..h)  the sum of eight doubles (all passed in xmm0-7)
 *   lazy_mix(...)    six integers and two doubles, combined (rdi..r9,
 *                    xmm0-1): checks each argument's position. */
double lazy_sum8(double a, double b, double c, double d, double e, double f, double g, double h)
{
    return a + b + c + d + e + f + g + h;
}

long lazy_mix(long a, long b, long c, long d, long e, long f, double x, double y)
{
    return a + 10 * b + 100 * c + 1000 * d + 10000 * e + 100000 * f + (long)(x * 1000000) +
           (long)(y * 10000000);
}
