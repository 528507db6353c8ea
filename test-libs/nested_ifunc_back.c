/* libnested_ifunc_back.so - the resolver of its ifunc
 * nested_ifunc_back_value opens libnested_ifunc_back_user.so, which needs
 * this very library: mapped but not finished (its ifuncs are being
 * resolved), so minld refuses the nested open (Error::Reentrant) rather
 * than map a second copy or hand out a half-done one. The resolver then
 * returns its fallback: nested_ifunc_back_call() (through a data pointer
 * bound at relocation, so the resolver runs then) == -1, and
 * nested_ifunc_back_error() is minld's message (-2 and no message if the
 * nested open was served). */
#include <stddef.h>

struct nested_api {
    void *(*open)(const char *name);
    void *(*sym)(void *lib, const char *name);
    void (*close)(void *lib);
    const char *(*error)(void);
};
extern struct nested_api nested_api;

static const char *error = "(the nested open succeeded)";

static int fallback(void)
{
    return -1;
}

static int served(void)
{
    return -2;
}

static int (*chosen)(void);

/* Called once per relocation naming the ifunc; tries the open once. */
static int (*resolve_value(void))(void)
{
    if (chosen != NULL)
        return chosen;
    void *user = nested_api.open("libnested_ifunc_back_user.so");
    if (user == NULL) {
        error = nested_api.error();
        return chosen = fallback;
    }
    nested_api.close(user);
    return chosen = served;
}

int nested_ifunc_back_value(void) __attribute__((ifunc("resolve_value")));

/* Bound at relocation: the resolver runs then. */
int (*const nested_ifunc_back_ptr)(void) = nested_ifunc_back_value;

int nested_ifunc_back_call(void)
{
    return nested_ifunc_back_ptr();
}

const char *nested_ifunc_back_error(void)
{
    return error;
}

int nested_ifunc_back_base(void)
{
    return 5;
}
