// libcxx_catcher.so (C++) - DT_NEEDED libcxx_thrower.so (RUNPATH $ORIGIN).
// Exceptions thrown in libcxx_thrower.so unwind through its frames into
// this library's handlers, which match them by type against the thrower's
// typeinfo. Results are the CAUGHT_* codes of cxx_exc.h:
//   cxx_catch_direct(kind, code)    calls cxx_throw_kind(kind, code) directly
//                                   (kind 0: 1000+code, 1: 2000+code,
//                                   2: 3000+code, 3: 0)
//   cxx_catch_callback(cb, arg)     calls cb(arg) inside the same try/catch:
//                                   the host passes the thrower's function
//                                   pointer, so the exception crosses from
//                                   one loaded library into another through
//                                   a pointer the host handed over
//   cxx_catch_rethrow(cb, arg)      an inner catch (...) rethrows with
//                                   `throw;`; the outer try classifies it:
//                                   RETHROWN (10000) + the code above
//   cxx_catch_base(cb, arg)         catch (const std::exception &) only:
//                                   MinldError -> 5000+code (dynamic_cast
//                                   across libraries), runtime_error ->
//                                   4000+code, anything else -> 3000
//   cxx_catch_later(cb, arg)        catch (...) keeps std::current_exception();
//                                   after the handler has ended,
//                                   std::rethrow_exception() throws it again
//                                   into the classifier: same codes as
//                                   cxx_catch_callback
//   cxx_catch_many(cb, arg, n)      n rounds of cxx_catch_callback; returns
//                                   how many were caught as expected for a
//                                   thrower of MinldError(arg) (n on success)
#include "cxx_exc.h"

#include <cstdlib>
#include <exception>
#include <cstring>
#include <stdexcept>

extern "C" void cxx_throw_kind(int kind, int code);

namespace {

int runtime_code(const std::runtime_error &e)
{
    const char *what = e.what();
    if (std::strncmp(what, "runtime ", 8) != 0)
        return -1;
    return std::atoi(what + 8);
}

template <typename F>
int classify(F f)
{
    try {
        f();
    } catch (const MinldError &e) {
        return CAUGHT_MINLD + e.code();
    } catch (const std::runtime_error &e) {
        return CAUGHT_RUNTIME + runtime_code(e);
    } catch (...) {
        // Only the int gets here; `throw;` inside the handler rethrows it to
        // the nested try, which reads its value.
        try {
            throw;
        } catch (int value) {
            return CAUGHT_ELLIPSIS + value;
        } catch (...) {
            return -1;
        }
    }
    return CAUGHT_NOTHING;
}

} // namespace

extern "C" int cxx_catch_direct(int kind, int code)
{
    return classify([=] { cxx_throw_kind(kind, code); });
}

extern "C" int cxx_catch_callback(void (*cb)(int), int arg)
{
    return classify([=] { cb(arg); });
}

extern "C" int cxx_catch_rethrow(void (*cb)(int), int arg)
{
    bool rethrown = false;
    int result = classify([&] {
        try {
            cb(arg);
        } catch (...) {
            rethrown = true;
            throw;
        }
    });
    return result + (rethrown ? RETHROWN : 0);
}

extern "C" int cxx_catch_later(void (*cb)(int), int arg)
{
    std::exception_ptr kept;
    try {
        cb(arg);
    } catch (...) {
        kept = std::current_exception();
    }
    if (!kept)
        return CAUGHT_NOTHING;
    return classify([&] { std::rethrow_exception(kept); });
}

extern "C" int cxx_catch_base(void (*cb)(int), int arg)
{
    try {
        cb(arg);
    } catch (const std::exception &e) {
        if (const MinldError *m = dynamic_cast<const MinldError *>(&e))
            return CAUGHT_BASE_MINLD + m->code();
        if (const std::runtime_error *r = dynamic_cast<const std::runtime_error *>(&e))
            return CAUGHT_BASE_RUNTIME + runtime_code(*r);
        return -2;
    } catch (...) {
        return CAUGHT_ELLIPSIS;
    }
    return CAUGHT_NOTHING;
}

extern "C" int cxx_catch_many(void (*cb)(int), int arg, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        if (cxx_catch_callback(cb, arg) == CAUGHT_MINLD + arg)
            ok++;
    return ok;
}
