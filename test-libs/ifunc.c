/* libifunc.so - STT_GNU_IFUNC symbols and R_X86_64_IRELATIVE.
 *
 *   ifunc_pick           exported STT_GNU_IFUNC; resolver picks pick_seven,
 *                        so ifunc_pick() == 7.
 *   ifunc_call_internal  calls a hidden (non-preemptible) ifunc alias from
 *                        inside the library, which makes the linker emit an
 *                        R_X86_64_IRELATIVE relocation; returns 7.
 *   ifunc_resolver_calls number of times the resolver has run: 1 right after
 *                        load (the IRELATIVE), +1 each time the exported
 *                        ifunc_pick symbol is resolved (dlsym, or a binding
 *                        from another object). */

static int resolver_calls;

static int pick_seven(void)
{
    return 7;
}

static int pick_zero(void)
{
    return 0;
}

typedef int (*pick_fn)(void);

/* Runs during relocation, before constructors: keep it trivial. */
static pick_fn pick_resolver(void)
{
    resolver_calls++;
    /* Always true; the condition only keeps both candidates alive. */
    return resolver_calls > 0 ? pick_seven : pick_zero;
}

/* Exported ifunc: references from outside go through GLOB_DAT/JUMP_SLOT
 * against an STT_GNU_IFUNC symbol. */
int ifunc_pick(void) __attribute__((ifunc("pick_resolver")));

/* Hidden ifunc: the reference below cannot be preempted, so the linker
 * resolves it locally to an R_X86_64_IRELATIVE. */
__attribute__((visibility("hidden")))
int ifunc_pick_internal(void) __attribute__((ifunc("pick_resolver")));

int ifunc_call_internal(void)
{
    return ifunc_pick_internal();
}

int ifunc_resolver_calls(void)
{
    return resolver_calls;
}
