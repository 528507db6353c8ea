/* A plugin with real dependencies: zlib and SQLite (an in-memory database
   opened by a constructor, which runs under the serving lock-down). */
#include <sqlite3.h>
#include <stddef.h>
#include <string.h>
#include <zlib.h>

ptrdiff_t deflate_len(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    uLongf len = cap;
    if (compress2(out, &len, in, n, 9) != Z_OK) return -1;
    return (ptrdiff_t)len;
}

static sqlite3 *db;
/* SQLite seeds its generator from /dev/urandom at the first need, with
   open(): the host grants it read-only. */
__attribute__((constructor)) static void init(void) {
    char seed;
    sqlite3_open(":memory:", &db);
    sqlite3_randomness(1, &seed);
}

struct buf { unsigned char *p; size_t len, cap; };
static int row(void *arg, int ncol, char **val, char **names) {
    struct buf *b = arg; (void)names;
    for (int i = 0; i < ncol; i++) {
        const char *v = val[i] ? val[i] : "NULL";
        size_t l = strlen(v);
        if (b->len + l + 1 > b->cap) return 1;
        memcpy(b->p + b->len, v, l); b->len += l;
        b->p[b->len++] = i + 1 < ncol ? '|' : '\n';
    }
    return 0;
}

/* Runs the input as SQL; returns the rows, '|' between columns. */
ptrdiff_t query(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    char sql[4096];
    if (!db || n >= sizeof sql) return -1;
    memcpy(sql, in, n); sql[n] = 0;
    struct buf b = { out, 0, cap };
    return sqlite3_exec(db, sql, row, &b, NULL) == SQLITE_OK ? (ptrdiff_t)b.len : -2;
}
