// Shared by cxx_thrower.cpp and cxx_catcher.cpp: the exception type thrown
// by libcxx_thrower.so and caught by type in libcxx_catcher.so.
//
// MinldError's key function (its first non-inline virtual member, what())
// is defined in cxx_thrower.cpp, so its vtable and typeinfo
// (_ZTI10MinldError, _ZTS10MinldError) are emitted only in
// libcxx_thrower.so; libcxx_catcher.so refers to them through dynamic
// relocations, and a catch by type compares against the thrower's typeinfo.
#ifndef MINLD_CXX_EXC_H
#define MINLD_CXX_EXC_H

#include <exception>

class MinldError : public std::exception {
public:
    explicit MinldError(int code);
    const char *what() const noexcept override; // key function
    ~MinldError() override;
    int code() const { return code_; }

private:
    int code_;
    char message_[32];
};

// What the catcher returns, by the handler that caught the exception.
enum {
    CAUGHT_NOTHING = 0,          // no exception
    CAUGHT_MINLD = 1000,         // catch (const MinldError &e): + e.code()
    CAUGHT_RUNTIME = 2000,       // catch (const std::runtime_error &e): + code in e.what()
    CAUGHT_ELLIPSIS = 3000,      // catch (...): an int was thrown (+ its value)
    CAUGHT_BASE_RUNTIME = 4000,  // catch (const std::exception &): runtime_error, + code
    CAUGHT_BASE_MINLD = 5000,    // catch (const std::exception &) + dynamic_cast to MinldError, + code
    RETHROWN = 10000,            // added when an inner catch (...) rethrew with `throw;`
};

#endif
