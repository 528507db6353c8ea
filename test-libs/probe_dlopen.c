/* probe_dlopen PATH [lazy]
 *
 * Loads PATH with glibc's own dlopen (RTLD_NOW, or RTLD_LAZY when the second
 * argument is "lazy") so the system loader's behaviour can be observed, e.g.
 *   strace -e trace=openat,mmap,mprotect,munmap ./probe_dlopen libfoo.so
 * and compared with minld's trace. On failure prints dlerror() to stderr and
 * exits 1; on success prints the path and exits 0 without calling dlclose. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "lazy") != 0)) {
        fprintf(stderr, "usage: %s PATH [lazy]\n", argv[0]);
        return 2;
    }
    int mode = (argc == 3) ? RTLD_LAZY : RTLD_NOW;
    void *handle = dlopen(argv[1], mode);
    if (handle == NULL) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    printf("%s\n", argv[1]);
    return 0; /* deliberately no dlclose */
}
