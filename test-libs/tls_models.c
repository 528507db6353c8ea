/* libtls_models.so (traditional dialect: __tls_get_addr) and libtls_desc.so
 * (the same source with -mtls-dialect=gnu2: TLSDESC) - the library's own
 * PT_TLS block, every part of it.
 *
 * Variables (PT_TLS p_align is 128, set by tlsm_aligned_zero):
 *   tlsm_gd           exported, general dynamic, .tdata, 1234
 *   tlsm_name         exported, general dynamic, .tdata, "minld-tls"
 *   tlsm_gd_zero      exported, general dynamic, .tbss, 0
 *   tlsm_ld_data      static, local dynamic, .tdata, 0x1122334455667788
 *   tlsm_ld_zero      static, local dynamic, .tbss, int[8] all 0
 *   tlsm_aligned      static, local dynamic, .tdata, _Alignas(64) long[8]
 *                     = {1, 2, ..., 8} (alignment padding inside the image)
 *   tlsm_aligned_zero static, local dynamic, .tbss, _Alignas(128) char[32]
 *   tlsm_big          static, local dynamic, .tbss, 64 KiB of zeros
 *
 * Relocations (readelf -r): traditional dialect: R_X86_64_DTPMOD64 and
 * R_X86_64_DTPOFF64 against tlsm_gd, tlsm_name and tlsm_gd_zero, and one
 * R_X86_64_DTPMOD64 without a symbol (the local-dynamic module slot);
 * gnu2 (gcc 12, binutils 2.40): nine R_X86_64_TLSDESC, all in DT_JMPREL
 * (with DT_TLSDESC_PLT / DT_TLSDESC_GOT): three against the exported
 * variables and six without a symbol whose addend is the offset in the
 * block (the local-dynamic accesses, _TLS_MODULE_BASE_ included).
 *
 *   tlsm_check_initial() == 0     every variable of this thread holds its
 *                                 initial value and the alignments hold;
 *                                 otherwise a mask of TLSM_BAD_* below.
 *   tlsm_scribble(seed)           overwrites every variable (all of tlsm_big
 *                                 too) with values derived from seed.
 *   tlsm_check_scribbled(seed) == 0  they still hold what tlsm_scribble(seed)
 *                                 wrote (no other thread wrote this block).
 *   getters and setters: tlsm_gd_get/set, tlsm_name_get, tlsm_ld_get/set,
 *   tlsm_gd_zero_get;
 *   addresses for distinctness and alignment checks: tlsm_gd_addr,
 *   tlsm_ld_addr, tlsm_aligned_addr (64-aligned), tlsm_aligned_zero_addr
 *   (128-aligned), tlsm_big_addr; tlsm_big_size() == 65536. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GD __attribute__((tls_model("global-dynamic")))
#define LD __attribute__((tls_model("local-dynamic")))

#define TLSM_BAD_GD 0x1
#define TLSM_BAD_NAME 0x2
#define TLSM_BAD_GD_ZERO 0x4
#define TLSM_BAD_LD_DATA 0x8
#define TLSM_BAD_LD_ZERO 0x10
#define TLSM_BAD_ALIGNED 0x20
#define TLSM_BAD_ALIGNED_ZERO 0x40
#define TLSM_BAD_BIG 0x80
#define TLSM_MISALIGNED_64 0x100
#define TLSM_MISALIGNED_128 0x200

#define BIG_SIZE 65536

__thread int tlsm_gd GD = 1234;
__thread char tlsm_name[16] GD = "minld-tls";
__thread long tlsm_gd_zero GD;

static __thread long tlsm_ld_data LD = 0x1122334455667788L;
static __thread int tlsm_ld_zero[8] LD;
static __thread _Alignas(64) long tlsm_aligned[8] LD = {1, 2, 3, 4, 5, 6, 7, 8};
static __thread _Alignas(128) unsigned char tlsm_aligned_zero[32] LD;
static __thread unsigned char tlsm_big[BIG_SIZE] LD;

int tlsm_gd_get(void) { return tlsm_gd; }
void tlsm_gd_set(int v) { tlsm_gd = v; }
int *tlsm_gd_addr(void) { return &tlsm_gd; }
const char *tlsm_name_get(void) { return tlsm_name; }
long tlsm_gd_zero_get(void) { return tlsm_gd_zero; }

long tlsm_ld_get(void) { return tlsm_ld_data; }
void tlsm_ld_set(long v) { tlsm_ld_data = v; }
long *tlsm_ld_addr(void) { return &tlsm_ld_data; }
void *tlsm_aligned_addr(void) { return tlsm_aligned; }
void *tlsm_aligned_zero_addr(void) { return tlsm_aligned_zero; }
unsigned char *tlsm_big_addr(void) { return tlsm_big; }
size_t tlsm_big_size(void) { return sizeof tlsm_big; }

static int all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

int tlsm_check_initial(void)
{
    int bad = 0;
    if (tlsm_gd != 1234)
        bad |= TLSM_BAD_GD;
    if (memcmp(tlsm_name, "minld-tls\0\0\0\0\0\0", 16) != 0)
        bad |= TLSM_BAD_NAME;
    if (tlsm_gd_zero != 0)
        bad |= TLSM_BAD_GD_ZERO;
    if (tlsm_ld_data != 0x1122334455667788L)
        bad |= TLSM_BAD_LD_DATA;
    if (!all_bytes((const unsigned char *)tlsm_ld_zero, sizeof tlsm_ld_zero, 0))
        bad |= TLSM_BAD_LD_ZERO;
    for (int i = 0; i < 8; i++)
        if (tlsm_aligned[i] != i + 1)
            bad |= TLSM_BAD_ALIGNED;
    if (!all_bytes(tlsm_aligned_zero, sizeof tlsm_aligned_zero, 0))
        bad |= TLSM_BAD_ALIGNED_ZERO;
    if (!all_bytes(tlsm_big, sizeof tlsm_big, 0))
        bad |= TLSM_BAD_BIG;
    if ((uintptr_t)tlsm_aligned % 64 != 0)
        bad |= TLSM_MISALIGNED_64;
    if ((uintptr_t)tlsm_aligned_zero % 128 != 0)
        bad |= TLSM_MISALIGNED_128;
    return bad;
}

void tlsm_scribble(int seed)
{
    unsigned char byte = (unsigned char)(seed * 37 + 1);
    tlsm_gd = seed;
    memset(tlsm_name, 'a' + seed % 26, sizeof tlsm_name - 1);
    tlsm_gd_zero = -seed;
    tlsm_ld_data = (long)seed << 32;
    for (int i = 0; i < 8; i++) {
        tlsm_ld_zero[i] = seed + i;
        tlsm_aligned[i] = seed * 100 + i;
    }
    memset(tlsm_aligned_zero, byte, sizeof tlsm_aligned_zero);
    memset(tlsm_big, byte, sizeof tlsm_big);
}

int tlsm_check_scribbled(int seed)
{
    unsigned char byte = (unsigned char)(seed * 37 + 1);
    int bad = 0;
    if (tlsm_gd != seed)
        bad |= TLSM_BAD_GD;
    for (size_t i = 0; i < sizeof tlsm_name - 1; i++)
        if (tlsm_name[i] != 'a' + seed % 26)
            bad |= TLSM_BAD_NAME;
    if (tlsm_gd_zero != -seed)
        bad |= TLSM_BAD_GD_ZERO;
    if (tlsm_ld_data != (long)seed << 32)
        bad |= TLSM_BAD_LD_DATA;
    for (int i = 0; i < 8; i++) {
        if (tlsm_ld_zero[i] != seed + i)
            bad |= TLSM_BAD_LD_ZERO;
        if (tlsm_aligned[i] != seed * 100 + i)
            bad |= TLSM_BAD_ALIGNED;
    }
    if (!all_bytes(tlsm_aligned_zero, sizeof tlsm_aligned_zero, byte))
        bad |= TLSM_BAD_ALIGNED_ZERO;
    if (!all_bytes(tlsm_big, sizeof tlsm_big, byte))
        bad |= TLSM_BAD_BIG;
    return bad;
}
