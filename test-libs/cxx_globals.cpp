// libcxx_globals.so (C++) - namespace-scope objects with constructors and
// destructors, an init_priority one, a function-local static, and library
// globals of libstdc++ types (std::string, std::vector) initialised
// dynamically.
//
// Each Tracked object records "ctor:<name>" when constructed and
// "dtor:<name>" when destroyed. Constructors run before the host can set a
// hook, so events are buffered and replayed, in order, by
// cxx_globals_set_hook(hook); later events go straight to the hook.
//
// Order observed with glibc 2.36 (dlopen, cxx_globals_touch_lazy(),
// dlclose):
//   ctor:early (init_priority 200), ctor:first, ctor:second, ctor:third,
//   [hook set] ctor:lazy, [unload] dtor:lazy, dtor:third, dtor:second,
//   dtor:first, dtor:early
// Destructors are registered with __cxa_atexit(dtor, obj, __dso_handle) as
// each construction completes and run by __cxa_finalize(__dso_handle) from
// the library's fini, newest first.
//
//   cxx_globals_set_hook(hook)      see above; hook(NULL) stops forwarding
//   cxx_globals_touch_lazy()        constructs the function-local static
//                                   (first call only); returns 1
//   cxx_globals_greeting()          "hello minld" (a global std::string)
//   cxx_globals_sum()               380 (a global std::vector<int> holding
//                                   0, 2, ..., 38, summed once constructed)
//   cxx_globals_live()              how many Tracked objects exist (4 after
//                                   load, 5 after touch_lazy)
#include <cstddef>
#include <numeric>
#include <string>
#include <vector>

namespace {

void (*hook_fn)(const char *);
const char *buffered[64];
std::size_t n_buffered;
int live;

void record(const char *event)
{
    if (hook_fn != nullptr)
        hook_fn(event);
    else if (n_buffered < sizeof buffered / sizeof buffered[0])
        buffered[n_buffered++] = event;
}

struct Tracked {
    const char *dtor_event;
    Tracked(const char *ctor_event, const char *dtor_event) : dtor_event(dtor_event)
    {
        live++;
        record(ctor_event);
    }
    ~Tracked()
    {
        live--;
        record(dtor_event);
    }
};

Tracked first("ctor:first", "dtor:first");
Tracked second("ctor:second", "dtor:second");
__attribute__((init_priority(200))) Tracked early("ctor:early", "dtor:early");

std::vector<int> make_evens()
{
    std::vector<int> v;
    for (int i = 0; i < 20; i++)
        v.push_back(2 * i);
    return v;
}

std::string greeting = std::string("hello ") + "minld";
std::vector<int> evens = make_evens();
Tracked third("ctor:third", "dtor:third");

} // namespace

extern "C" void cxx_globals_set_hook(void (*hook)(const char *))
{
    hook_fn = hook;
    if (hook == nullptr)
        return;
    for (std::size_t i = 0; i < n_buffered; i++)
        hook(buffered[i]);
    n_buffered = 0;
}

extern "C" int cxx_globals_touch_lazy()
{
    static Tracked lazy("ctor:lazy", "dtor:lazy");
    return lazy.dtor_event != nullptr;
}

extern "C" const char *cxx_globals_greeting()
{
    return greeting.c_str();
}

extern "C" int cxx_globals_sum()
{
    return std::accumulate(evens.begin(), evens.end(), 0);
}

extern "C" int cxx_globals_live()
{
    return live;
}
