/* libbasic.so - the simplest library with exported data and functions.
 *
 * Proves: symbol lookup of data and functions, writable data (basic_counter),
 * R_X86_64_RELATIVE relocations for pointers to own rodata (basic_names,
 * basic_greeting's literal), R_X86_64_64 / RELATIVE for pointers to own
 * functions (basic_ops), and SSE floating point (basic_scale).
 * Also exports basic_text, referenced with an addend from librelocs.so. */

int basic_counter = 41;

/* Referenced by librelocs.so as `basic_text + 3` (R_X86_64_64 with addend). */
char basic_text[] = "abcdefgh";

int basic_add(int a, int b)
{
    return a + b;
}

/* Increments basic_counter and returns the new value (first call: 42). */
int basic_bump(void)
{
    return ++basic_counter;
}

const char *basic_greeting(void)
{
    return "hello from basic";
}

/* Array of pointers to string literals: relocated at load time. */
const char *const basic_names[3] = { "zero", "one", "two" };

double basic_scale(double x)
{
    return x * 2.5;
}

/* Struct of pointers to our own (exported) functions. */
struct basic_ops {
    int (*add)(int, int);
    int (*bump)(void);
    const char *(*greeting)(void);
    double (*scale)(double);
};

const struct basic_ops basic_ops = {
    basic_add,
    basic_bump,
    basic_greeting,
    basic_scale,
};
