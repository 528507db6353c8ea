// libcxx_private.so (C++) - to load with Loader::reuse_host(false), so that
// it gets a private libstdc++.so.6 (and libgcc_s.so.1) even when the process
// has its own copy. The exceptions here are thrown *inside libstdc++*
// (std::vector::at, std::stoi) and unwind through its frames into this
// library; the eh globals they use are libstdc++'s own TLS.
//
//   cxx_private_at(i)        std::vector<int>{10, 20, 30}.at(i), or -1 when
//                            libstdc++ threw std::out_of_range (i >= 3)
//   cxx_private_stoi(s)      std::stoi(s), -1 for std::invalid_argument,
//                            -2 for std::out_of_range
//   cxx_private_terminate_addr()  &std::terminate as bound in this library
//                            (R_X86_64_GLOB_DAT): tells which libstdc++ copy
//                            it uses
#include <stdexcept>
#include <string>
#include <vector>

extern "C" int cxx_private_at(unsigned i)
{
    std::vector<int> v{10, 20, 30};
    try {
        return v.at(i);
    } catch (const std::out_of_range &) {
        return -1;
    }
}

extern "C" int cxx_private_stoi(const char *s)
{
    try {
        return std::stoi(s);
    } catch (const std::invalid_argument &) {
        return -1;
    } catch (const std::out_of_range &) {
        return -2;
    }
}

extern "C" void *cxx_private_terminate_addr()
{
    void (*volatile f)() = &std::terminate;
    return reinterpret_cast<void *>(f);
}
