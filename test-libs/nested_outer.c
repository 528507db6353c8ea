/* libnested_outer.so - its constructor opens libnested_leaf.so through
 * minld (libnested_hook.so's table), calls nested_leaf_value() and keeps
 * the handle: nested_outer_result() == 42 (41 + 1), or -1 if the open
 * failed (nested_outer_error() then says why), -2 if the symbol was
 * missing. Its destructor closes the handle. */
#include <stddef.h>

struct nested_api {
    void *(*open)(const char *name);
    void *(*sym)(void *lib, const char *name);
    void (*close)(void *lib);
    const char *(*error)(void);
};
extern struct nested_api nested_api;

static void *leaf;
static int result;
static const char *error = "";

__attribute__((constructor)) static void outer_init(void)
{
    leaf = nested_api.open("libnested_leaf.so");
    if (leaf == NULL) {
        result = -1;
        error = nested_api.error();
        return;
    }
    int (*value)(void) = (int (*)(void))nested_api.sym(leaf, "nested_leaf_value");
    result = value == NULL ? -2 : value() + 1;
}

__attribute__((destructor)) static void outer_fini(void)
{
    if (leaf != NULL)
        nested_api.close(leaf);
}

int nested_outer_result(void)
{
    return result;
}

const char *nested_outer_error(void)
{
    return error;
}
