/* libexecstack.so - linked with -z execstack: PT_GNU_STACK has PF_X (RWE).
 * glibc reacts by making all thread stacks executable
 * (_dl_make_stack_executable: mprotect of the stack with PROT_EXEC); a loader
 * must at least notice the flag. execstack_fn() == 17. */
int execstack_fn(void)
{
    return 17;
}
