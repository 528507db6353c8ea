/* libnested_back.so - DT_NEEDED libnested_self.so, opened by that
 * library's constructor: nested_back_value() == nested_self_value() + 1
 * == 8; nested_back_self_fn() is the address of nested_self_value it was
 * bound to. */
int nested_self_value(void);

int nested_back_value(void)
{
    return nested_self_value() + 1;
}

void *nested_back_self_fn(void)
{
    return (void *)nested_self_value;
}
