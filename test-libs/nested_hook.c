/* libnested_hook.so - how the test-libs nested_*.c reach minld from their
 * constructors and ifunc resolvers: a table of function pointers
 * (`nested_api`) that the test process fills in after opening this library
 * through minld, and that the other nested_* libraries, which name this one
 * in DT_NEEDED, call through. minld reuses this very object for them (one
 * object per file), so they see the table the test filled in.
 *
 * Why a table in a helper library: it is plain C on both sides (no string
 * to parse as with an address in an environment variable), it needs no
 * linker flags on the Rust test binary (exporting a function from the
 * executable would), and it keeps the nested opens in minld's default
 * namespace (a `Namespace` export would make every nested library a
 * namespace plugin, with that namespace's rules). It is also the shape of
 * the real use: a C host handing its plugins a service table, or a drop-in
 * libdl whose dlopen calls minld.
 *
 * The counters are written by the libraries' init and fini functions, so
 * the test can count them even after a library is unmapped. */
#include <stddef.h>

struct nested_api {
    /* Opens a library through minld (a bare name is one of the test-libs);
     * NULL on failure, with the error for error(). */
    void *(*open)(const char *name);
    /* A symbol's address in an opened library, NULL if missing. */
    void *(*sym)(void *lib, const char *name);
    /* Drops the handle: the library is closed when nothing else uses it. */
    void (*close)(void *lib);
    /* The last error of open on this thread ("" if none). */
    const char *(*error)(void);
};

struct nested_api nested_api;

int nested_leaf_inits;
int nested_leaf_finis;
int nested_top_inits;
