/* libversioned.so - GNU symbol versioning (DT_VERSYM / DT_VERDEF).
 *
 *   vers_value@VERS_1     (old, non-default, hidden version) returns 1
 *   vers_value@@VERS_2    (default version)                  returns 2
 *   vers_only_v1@@VERS_1                                     returns 10
 *
 * An unversioned lookup of vers_value must find the default (VERS_2, 2);
 * a lookup asking for VERS_1 must find the old one (1). */

__attribute__((symver("vers_value@VERS_1")))
int vers_value_v1(void)
{
    return 1;
}

__attribute__((symver("vers_value@@VERS_2")))
int vers_value_v2(void)
{
    return 2;
}

int vers_only_v1(void)
{
    return 10;
}
