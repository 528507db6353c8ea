/* libplugin_abi2.so - a plugin built for ABI version 2. */
const unsigned plugin_abi_version = 2;

int plugin_run(int x)
{
    return x;
}
