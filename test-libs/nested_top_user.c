/* libnested_top_user.so - DT_NEEDED libnested_top.so; its constructor
 * records nested_top_inits as it ran: nested_top_user_saw() == 1 (top's
 * constructor ran before this one). */
extern int nested_top_inits;

static int saw = -1;

__attribute__((constructor)) static void top_user_init(void)
{
    saw = nested_top_inits;
}

int nested_top_user_saw(void)
{
    return saw;
}

int nested_top_value(void);

/* A use of libnested_top.so, so the DT_NEEDED entry is there for it. */
int nested_top_user_value(void)
{
    return nested_top_value();
}
