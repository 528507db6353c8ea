// libcxx_thrower.so (C++) - throws; libcxx_catcher.so catches. Needs
// libstdc++.so.6 / libgcc_s.so.1. See cxx_exc.h for the exception type (its
// typeinfo and vtable live here) and the catcher's result codes.
//
// Every thrower has the signature void(int) so the host can hand it to
// cxx_catch_callback() in the catcher as a function pointer:
//   cxx_throw_minld(code)    throw MinldError(code)
//   cxx_throw_runtime(code)  throw std::runtime_error("runtime <code>")
//   cxx_throw_int(code)      throw code (an int: only catch (...) takes it)
//   cxx_throw_nothing(code)  returns normally
//   cxx_throw_kind(kind, code)  kind 0..3: one of the four above
// and, inside this library alone:
//   cxx_thrower_own_catch(code) == code + 1  (throws MinldError and catches
//                                            it in the same function)
//   cxx_thrower_what(code) copies MinldError(code).what() ("minld error
//                          <code>") into a static buffer and returns it.
#include "cxx_exc.h"

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

MinldError::MinldError(int code) : code_(code)
{
    std::snprintf(message_, sizeof message_, "minld error %d", code);
}

const char *MinldError::what() const noexcept
{
    return message_;
}

MinldError::~MinldError() = default;

extern "C" void cxx_throw_minld(int code)
{
    throw MinldError(code);
}

extern "C" void cxx_throw_runtime(int code)
{
    throw std::runtime_error("runtime " + std::to_string(code));
}

extern "C" void cxx_throw_int(int code)
{
    throw code;
}

extern "C" void cxx_throw_nothing(int)
{
}

extern "C" void cxx_throw_kind(int kind, int code)
{
    switch (kind) {
    case 0:
        cxx_throw_minld(code);
        break;
    case 1:
        cxx_throw_runtime(code);
        break;
    case 2:
        cxx_throw_int(code);
        break;
    default:
        cxx_throw_nothing(code);
        break;
    }
}

extern "C" int cxx_thrower_own_catch(int code)
{
    try {
        cxx_throw_minld(code);
    } catch (const MinldError &e) {
        return e.code() + 1;
    }
    return -1;
}

extern "C" const char *cxx_thrower_what(int code)
{
    static char buffer[32];
    std::strncpy(buffer, MinldError(code).what(), sizeof buffer - 1);
    return buffer;
}
