// libcxx_basic.so (C++) - needs the host libstdc++.so.6 / libgcc_s.so.1.
//
//   cxx_basic_static_init() == 42  a namespace-scope object with a dynamic
//                                  constructor (run from .init_array) set it.
//   cxx_basic_virtual(x)   == x*3  virtual call through a vtable (RELATIVE /
//                                  R_X86_64_64 relocations in .data.rel.ro).
//   cxx_basic_throw_catch() == 7   throws and catches an exception inside
//                                  the library. The unwinder finds .eh_frame
//                                  through dl_iterate_phdr, which only knows
//                                  objects loaded by glibc: a custom loader
//                                  that does not register the library's
//                                  frames gets std::terminate() here.
#include <stdexcept>

namespace {

int static_value;

struct Init {
    Init() { static_value = 42; }
};

Init init_object;

struct Base {
    virtual ~Base() = default;
    virtual int apply(int x) const { return x; }
};

struct Triple : Base {
    int apply(int x) const override { return x * 3; }
};

Triple triple;
// volatile: stops gcc from devirtualising the call below.
Base *volatile object = &triple;

} // namespace

extern "C" int cxx_basic_static_init()
{
    return static_value;
}

extern "C" int cxx_basic_virtual(int x)
{
    return object->apply(x);
}

extern "C" int cxx_basic_throw_catch()
{
    try {
        throw std::runtime_error("minld");
    } catch (const std::runtime_error &) {
        return 7;
    }
    return 0;
}
