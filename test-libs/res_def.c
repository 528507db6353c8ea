/* libres_def.so - definitions whose binding follows a rule:
 *   res_versioned@VER_1   (old, hidden version)   returns its own address
 *   res_versioned@@VER_2  (default version)       returns its own address
 *   res_protected         (protected visibility)  returns its own address
 *   res_protected_here()  the address its own reference to res_protected
 *                         bound (protected: always this library's) */
__attribute__((symver("res_versioned@VER_1")))
void *res_versioned_v1(void)
{
    return (void *)&res_versioned_v1;
}

__attribute__((symver("res_versioned@@VER_2")))
void *res_versioned_v2(void)
{
    return (void *)&res_versioned_v2;
}

__attribute__((visibility("protected")))
void *res_protected(void)
{
    return (void *)&res_protected;
}

void *res_protected_here(void)
{
    return (void *)&res_protected;
}
