/* liblibc_impostor.so - names itself libc.so.6 in its DT_SONAME and
 * defines getpid: it must not hide the host's libc from its own scope.
 *   getpid() == -42 (its own)
 *   impostor_pid()  getpid() as bound through its PLT: the process's pid */
#include <unistd.h>

pid_t getpid(void)
{
    return -42;
}

int impostor_pid(void)
{
    return getpid();
}
