/* libdl_dtor.so - a destructor that says it ran, for the preload's test of
 * fini at exit: a program dlopens it through the preload, never closes it,
 * and exits; the line must be printed once. dl_dtor_alive() == 5. */
#include <unistd.h>

int dl_dtor_alive(void)
{
    return 5;
}

__attribute__((destructor)) static void dl_dtor_fini(void)
{
    static const char line[] = "dl_dtor: destructor ran\n";
    (void)!write(1, line, sizeof line - 1);
}
