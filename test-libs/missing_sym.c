/* libmissing_sym.so - calls minld_no_such_function, which no library defines
 * (shared objects may have undefined symbols; no -z defs). The reference is a
 * JUMP_SLOT: RTLD_NOW loading must fail with "undefined symbol:
 * minld_no_such_function"; RTLD_LAZY loading succeeds until it is called. */
int minld_no_such_function(void);

int missing_sym_call(void)
{
    return minld_no_such_function();
}
