/* libnested_ifunc.so - the resolver of its ifunc nested_ifunc_value opens
 * libnested_leaf.so through minld while the library is being relocated,
 * and returns the leaf's nested_leaf_value as the implementation (the
 * handle is kept, closed by the destructor). A data pointer to the ifunc
 * makes the resolver run when the library is relocated (it opens the leaf
 * once: nested_ifunc_resolved() == 1); nested_ifunc_call() calls through it:
 * 41, or -1 from the fallback if the open failed (nested_ifunc_error()
 * says why). */
#include <stddef.h>

struct nested_api {
    void *(*open)(const char *name);
    void *(*sym)(void *lib, const char *name);
    void (*close)(void *lib);
    const char *(*error)(void);
};
extern struct nested_api nested_api;

static void *leaf;
static const char *error = "";

static int fallback(void)
{
    return -1;
}

static int resolved;
static int (*chosen)(void);

/* Called once per relocation naming the ifunc (two here: the data
 * pointer's and the PLT slot's), as glibc does: it opens the leaf once. */
static int (*resolve_value(void))(void)
{
    if (chosen != NULL)
        return chosen;
    resolved++;
    leaf = nested_api.open("libnested_leaf.so");
    if (leaf == NULL) {
        error = nested_api.error();
        return chosen = fallback;
    }
    int (*value)(void) = (int (*)(void))nested_api.sym(leaf, "nested_leaf_value");
    return chosen = value == NULL ? fallback : value;
}

int nested_ifunc_value(void) __attribute__((ifunc("resolve_value")));

/* Bound at relocation: the resolver runs then. */
int (*const nested_ifunc_ptr)(void) = nested_ifunc_value;

int nested_ifunc_call(void)
{
    return nested_ifunc_ptr();
}

int nested_ifunc_resolved(void)
{
    return resolved;
}

__attribute__((destructor)) static void ifunc_fini(void)
{
    if (leaf != NULL)
        nested_api.close(leaf);
}

const char *nested_ifunc_error(void)
{
    return error;
}
