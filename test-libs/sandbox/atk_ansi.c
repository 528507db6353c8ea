/* Hole 8: a load error whose text the plugin chooses. This plugin needs a
   library whose name holds ANSI escape sequences (its DT_NEEDED is the
   soname of a stub that build.rs links against in the scratch directory):
   the loader's "cannot open" message carries them to the host. */
int atk_ansi_stub_fn(void);

long run(const unsigned char *in, unsigned long n, unsigned char *out, unsigned long cap) {
    (void)in; (void)n; (void)out; (void)cap;
    return atk_ansi_stub_fn();
}
