/* fault/libfault_b.so - middle of the libfault chain; also needs libbasic
 * (shared with other loads, to see that a failed load leaves no count on
 * it). */
extern int fault_c(void);
extern int basic_add(int, int);

int fault_b(void)
{
    return basic_add(fault_c(), 1);
}
