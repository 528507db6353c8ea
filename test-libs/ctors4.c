/* libctors4.so - four constructors, each adding its number to
 * ctors4_sum (1 + 2 + 4 + 8 = 15 once all ran), besides crtstuff's
 * frame_dummy: five .init_array entries. PIC code: their words are 0 in
 * the file and relocations fill them at load: RELATIVE ones for the static
 * constructors (and frame_dummy), R_X86_64_64 against the symbol for the
 * exported ones (ctors4_c, ctors4_d). Built a second time as
 * libctors4_relr.so with -z pack-relative-relocs: then the RELATIVE words
 * hold the addresses and DT_RELR relocates them. The policy report must
 * list every entry. */

int ctors4_sum;

__attribute__((constructor)) static void ctors4_a(void)
{
    ctors4_sum += 1;
}

__attribute__((constructor)) static void ctors4_b(void)
{
    ctors4_sum += 2;
}

__attribute__((constructor)) void ctors4_c(void)
{
    ctors4_sum += 4;
}

__attribute__((constructor)) void ctors4_d(void)
{
    ctors4_sum += 8;
}

int ctors4_get(void)
{
    return ctors4_sum;
}
