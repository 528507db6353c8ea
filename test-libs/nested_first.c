/* libnested_first.so - a dependency of libnested_top.so, so initialised
 * before it; its constructor opens libnested_top_user.so, which needs
 * libnested_top.so: registered and relocated by the outer load, but not
 * yet initialised. As with glibc, the nested open runs top's constructor
 * first (before top_user's), and the outer load then does not run it
 * again. nested_first_result() is what top_user's constructor saw of
 * nested_top_inits (1), or -1 if the open failed. */
#include <stddef.h>

struct nested_api {
    void *(*open)(const char *name);
    void *(*sym)(void *lib, const char *name);
    void (*close)(void *lib);
    const char *(*error)(void);
};
extern struct nested_api nested_api;

static int result;
static void *user;

__attribute__((constructor)) static void first_init(void)
{
    user = nested_api.open("libnested_top_user.so");
    if (user == NULL) {
        result = -1;
        return;
    }
    int (*saw)(void) = (int (*)(void))nested_api.sym(user, "nested_top_user_saw");
    result = saw == NULL ? -2 : saw();
}

__attribute__((destructor)) static void first_fini(void)
{
    if (user != NULL)
        nested_api.close(user);
}

int nested_first_result(void)
{
    return result;
}
