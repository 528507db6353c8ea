/* libnested_closer.so - its constructor opens libnested_leaf.so through
 * minld, calls it and closes it again before returning:
 * nested_closer_result() == 41 (-1: the open failed). The leaf's init and
 * fini then ran once each (counters in libnested_hook.so) and it is no
 * longer mapped once the constructor is done. */
#include <stddef.h>

struct nested_api {
    void *(*open)(const char *name);
    void *(*sym)(void *lib, const char *name);
    void (*close)(void *lib);
    const char *(*error)(void);
};
extern struct nested_api nested_api;

static int result;

__attribute__((constructor)) static void closer_init(void)
{
    void *leaf = nested_api.open("libnested_leaf.so");
    if (leaf == NULL) {
        result = -1;
        return;
    }
    int (*value)(void) = (int (*)(void))nested_api.sym(leaf, "nested_leaf_value");
    result = value == NULL ? -2 : value();
    nested_api.close(leaf);
}

int nested_closer_result(void)
{
    return result;
}
