/* libfault_a.so - head of a chain whose third library has an undefined
 * symbol (fault_c.c), and, when its middle library is deleted from a
 * copy of the directory, a chain with a dependency missing in the middle. */
extern int fault_b(void);

int fault_a(void)
{
    return fault_b() + 1;
}
