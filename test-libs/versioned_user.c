/* libversioned_user.so - linked against libversioned.so, so its reference to
 * vers_value is bound at link time to the default version VERS_2
 * (DT_VERNEED entry for libversioned.so / VERS_2). The loader must pick
 * vers_value@@VERS_2: versioned_user_call() == 2. */
int vers_value(void);

int versioned_user_call(void)
{
    return vers_value();
}
