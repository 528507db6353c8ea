// libcxx_tls_dtor.so (C++) - a thread_local object with a non-trivial
// destructor. Its first use in a thread constructs it and registers the
// destructor with __cxa_thread_atexit (libstdc++), which passes it to
// glibc's __cxa_thread_atexit_impl(dtor, obj, __dso_handle); glibc runs it
// when the thread exits and keeps the library loaded until then, even if it
// was dlclose'd in the meantime.
//
//   cxx_tls_set_hook(hook)   hook(id) is called by each destructor
//   cxx_tls_touch()          this thread's object id: 1, 2, ... in order of
//                            first use, over all threads and loads of this
//                            copy of the library; the same id on each call
//                            from one thread
//   cxx_tls_constructed()    objects constructed so far
//   cxx_tls_destroyed()      objects destroyed so far
#include <atomic>

namespace {

void (*hook_fn)(int);
std::atomic<int> next_id{0};
std::atomic<int> constructed{0};
std::atomic<int> destroyed{0};

struct PerThread {
    int id;
    PerThread() : id(++next_id) { constructed++; }
    ~PerThread()
    {
        destroyed++;
        if (void (*hook)(int) = hook_fn)
            hook(id);
    }
};

thread_local PerThread per_thread;

} // namespace

extern "C" void cxx_tls_set_hook(void (*hook)(int))
{
    hook_fn = hook;
}

extern "C" int cxx_tls_touch()
{
    return per_thread.id;
}

extern "C" int cxx_tls_constructed()
{
    return constructed;
}

extern "C" int cxx_tls_destroyed()
{
    return destroyed;
}
