/* libnested_self.so - its constructor opens libnested_back.so through
 * minld, which names libnested_self.so in DT_NEEDED: the nested open must
 * reuse this object (already relocated, its constructor running), not map
 * it again, nor run its constructor a second time.
 * nested_self_inits() == 1; nested_self_result() == 8 (back's
 * nested_back_value(), which calls nested_self_value() == 7, plus one; -1
 * if the open failed); nested_self_back_saw() is the address of
 * nested_self_value that libnested_back.so was bound to (this object's). */
#include <stddef.h>

struct nested_api {
    void *(*open)(const char *name);
    void *(*sym)(void *lib, const char *name);
    void (*close)(void *lib);
    const char *(*error)(void);
};
extern struct nested_api nested_api;

static int inits;
static int result;
static void *back;
static void *back_saw;

int nested_self_value(void)
{
    return 7;
}

__attribute__((constructor)) static void self_init(void)
{
    inits++;
    back = nested_api.open("libnested_back.so");
    if (back == NULL) {
        result = -1;
        return;
    }
    int (*value)(void) = (int (*)(void))nested_api.sym(back, "nested_back_value");
    void *(*saw)(void) = (void *(*)(void))nested_api.sym(back, "nested_back_self_fn");
    result = value == NULL ? -2 : value();
    back_saw = saw == NULL ? NULL : saw();
}

__attribute__((destructor)) static void self_fini(void)
{
    if (back != NULL)
        nested_api.close(back);
}

int nested_self_inits(void)
{
    return inits;
}

int nested_self_result(void)
{
    return result;
}

void *nested_self_back_saw(void)
{
    return back_saw;
}
