/* libctor_base.so - event recorder for the constructor/destructor tests, and
 * itself records "base:ctor" / "base:dtor".
 *
 *   order_record(event)  appends an event. Until a sink is set, events are
 *                        kept in a static buffer (constructors run before the
 *                        test can install a sink).
 *   order_set_sink(sink) replays the buffered events into sink, in order, then
 *                        forwards later events straight to it (destructors
 *                        run after the test has installed its sink).
 *
 * Order observed with glibc 2.36 for dlopen("libctor_top.so") + dlclose:
 *   base:ctor, mid:ctor101, mid:ctor, top:init, top:ctor, top:args-ok,
 *   [test installs its sink here]
 *   top:dtor, top:atexit, top:fini, mid:dtor, base:dtor
 * Dependencies are initialised first and finalised last; DT_INIT runs before
 * DT_INIT_ARRAY; DT_FINI_ARRAY runs in reverse, so top_dtor runs before
 * crtbegin's __do_global_dtors_aux (the first fini_array entry), which calls
 * __cxa_finalize and thus the atexit handler; DT_FINI runs last. */
#include <stddef.h>

#define MAX_EVENTS 64

static const char *buffered[MAX_EVENTS];
static size_t n_buffered;
static void (*sink_fn)(const char *event);

void order_record(const char *event)
{
    if (sink_fn != NULL) {
        sink_fn(event);
    } else if (n_buffered < MAX_EVENTS) {
        buffered[n_buffered++] = event;
    }
}

void order_set_sink(void (*sink)(const char *event))
{
    sink_fn = sink;
    if (sink == NULL)
        return;
    for (size_t i = 0; i < n_buffered; i++)
        sink(buffered[i]);
    n_buffered = 0;
}

__attribute__((constructor))
static void base_ctor(void)
{
    order_record("base:ctor");
}

__attribute__((destructor))
static void base_dtor(void)
{
    order_record("base:dtor");
}
