/* Link-time stub for atk_ansi.c; its soname holds ANSI escapes (build.rs). */
int atk_ansi_stub_fn(void) { return 0; }
