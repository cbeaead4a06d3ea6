/*
 * The small msgpack subset the C examples need: write ints, floats, strings,
 * bins, arrays, maps and float64 ndarrays (msgpack-numpy form); read them back.
 * Header-only; not a general-purpose msgpack library.
 */
#ifndef MINI_MSGPACK_H
#define MINI_MSGPACK_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *data;
    size_t len, cap;
} mp_writer;

static inline void mp_put(mp_writer *w, const void *p, size_t n) {
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        while (cap < w->len + n) cap *= 2;
        w->data = (uint8_t *)realloc(w->data, cap);
        w->cap = cap;
    }
    memcpy(w->data + w->len, p, n);
    w->len += n;
}

static inline void mp_byte(mp_writer *w, uint8_t b) { mp_put(w, &b, 1); }

static inline void mp_be(mp_writer *w, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; i--) mp_byte(w, (uint8_t)(v >> (8 * i)));
}

static inline void mp_uint(mp_writer *w, uint64_t v) {
    if (v < 128) mp_byte(w, (uint8_t)v);
    else if (v <= 0xff) { mp_byte(w, 0xcc); mp_be(w, v, 1); }
    else if (v <= 0xffff) { mp_byte(w, 0xcd); mp_be(w, v, 2); }
    else if (v <= 0xffffffffu) { mp_byte(w, 0xce); mp_be(w, v, 4); }
    else { mp_byte(w, 0xcf); mp_be(w, v, 8); }
}

static inline void mp_double(mp_writer *w, double d) {
    uint64_t bits;
    memcpy(&bits, &d, 8);
    mp_byte(w, 0xcb);
    mp_be(w, bits, 8);
}

static inline void mp_str(mp_writer *w, const char *s) {
    size_t n = strlen(s);
    if (n < 32) mp_byte(w, (uint8_t)(0xa0 | n));
    else if (n <= 0xff) { mp_byte(w, 0xd9); mp_be(w, n, 1); }
    else { mp_byte(w, 0xdb); mp_be(w, n, 4); }
    mp_put(w, s, n);
}

static inline void mp_bin(mp_writer *w, const void *p, size_t n) {
    if (n <= 0xff) { mp_byte(w, 0xc4); mp_be(w, n, 1); }
    else if (n <= 0xffff) { mp_byte(w, 0xc5); mp_be(w, n, 2); }
    else { mp_byte(w, 0xc6); mp_be(w, n, 4); }
    mp_put(w, p, n);
}

static inline void mp_array(mp_writer *w, uint32_t n) {
    if (n < 16) mp_byte(w, (uint8_t)(0x90 | n));
    else { mp_byte(w, 0xdd); mp_be(w, n, 4); }
}

static inline void mp_map(mp_writer *w, uint32_t n) {
    if (n < 16) mp_byte(w, (uint8_t)(0x80 | n));
    else { mp_byte(w, 0xdf); mp_be(w, n, 4); }
}

/* A float64 C-order array as msgpack-numpy writes it. */
static inline void mp_f64_array(mp_writer *w, const double *v, const uint64_t *shape, int ndim) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    mp_map(w, 5);
    mp_bin(w, "nd", 2); mp_byte(w, 0xc3);
    mp_bin(w, "type", 4); mp_str(w, "<f8");
    mp_bin(w, "kind", 4); mp_bin(w, "", 0);
    mp_bin(w, "shape", 5); mp_array(w, (uint32_t)ndim);
    for (int i = 0; i < ndim; i++) mp_uint(w, shape[i]);
    mp_bin(w, "data", 4); mp_bin(w, v, n * sizeof(double));
}

/* ---- reading ---- */

typedef struct {
    const uint8_t *p, *end;
    int err;
} mp_reader;

enum mp_type { MP_NIL, MP_BOOL, MP_INT, MP_FLOAT, MP_STR, MP_BIN, MP_ARRAY, MP_MAP, MP_ERR };

typedef struct {
    enum mp_type type;
    int64_t i;          /* MP_INT, MP_BOOL */
    double f;           /* MP_FLOAT */
    const uint8_t *ptr; /* MP_STR, MP_BIN */
    uint32_t len;       /* MP_STR, MP_BIN length; MP_ARRAY, MP_MAP count */
} mp_obj;

static inline uint64_t mp_rd(mp_reader *r, int n) {
    uint64_t v = 0;
    if (r->end - r->p < n) { r->err = 1; return 0; }
    for (int i = 0; i < n; i++) v = (v << 8) | *r->p++;
    return v;
}

/* Read one header (for arrays and maps, the elements follow). */
static inline mp_obj mp_next(mp_reader *r) {
    mp_obj o;
    memset(&o, 0, sizeof o);
    o.type = MP_ERR;
    if (r->p >= r->end) { r->err = 1; return o; }
    uint8_t m = *r->p++;
    if (m < 0x80) { o.type = MP_INT; o.i = m; }
    else if (m >= 0xe0) { o.type = MP_INT; o.i = (int8_t)m; }
    else if ((m & 0xf0) == 0x80) { o.type = MP_MAP; o.len = m & 0x0f; }
    else if ((m & 0xf0) == 0x90) { o.type = MP_ARRAY; o.len = m & 0x0f; }
    else if ((m & 0xe0) == 0xa0) { o.type = MP_STR; o.len = m & 0x1f; }
    else switch (m) {
        case 0xc0: o.type = MP_NIL; break;
        case 0xc2: case 0xc3: o.type = MP_BOOL; o.i = m == 0xc3; break;
        case 0xcc: o.type = MP_INT; o.i = (int64_t)mp_rd(r, 1); break;
        case 0xcd: o.type = MP_INT; o.i = (int64_t)mp_rd(r, 2); break;
        case 0xce: o.type = MP_INT; o.i = (int64_t)mp_rd(r, 4); break;
        case 0xcf: o.type = MP_INT; o.i = (int64_t)mp_rd(r, 8); break;
        case 0xd0: o.type = MP_INT; o.i = (int8_t)mp_rd(r, 1); break;
        case 0xd1: o.type = MP_INT; o.i = (int16_t)mp_rd(r, 2); break;
        case 0xd2: o.type = MP_INT; o.i = (int32_t)mp_rd(r, 4); break;
        case 0xd3: o.type = MP_INT; o.i = (int64_t)mp_rd(r, 8); break;
        case 0xcb: { uint64_t b = mp_rd(r, 8); o.type = MP_FLOAT; memcpy(&o.f, &b, 8); break; }
        case 0xca: { uint32_t b = (uint32_t)mp_rd(r, 4); float f; memcpy(&f, &b, 4); o.type = MP_FLOAT; o.f = f; break; }
        case 0xd9: case 0xc4: o.type = m == 0xd9 ? MP_STR : MP_BIN; o.len = (uint32_t)mp_rd(r, 1); break;
        case 0xda: case 0xc5: o.type = m == 0xda ? MP_STR : MP_BIN; o.len = (uint32_t)mp_rd(r, 2); break;
        case 0xdb: case 0xc6: o.type = m == 0xdb ? MP_STR : MP_BIN; o.len = (uint32_t)mp_rd(r, 4); break;
        case 0xdc: o.type = MP_ARRAY; o.len = (uint32_t)mp_rd(r, 2); break;
        case 0xdd: o.type = MP_ARRAY; o.len = (uint32_t)mp_rd(r, 4); break;
        case 0xde: o.type = MP_MAP; o.len = (uint32_t)mp_rd(r, 2); break;
        case 0xdf: o.type = MP_MAP; o.len = (uint32_t)mp_rd(r, 4); break;
        default: r->err = 1; return o;
    }
    if (o.type == MP_STR || o.type == MP_BIN) {
        if ((size_t)(r->end - r->p) < o.len) { r->err = 1; o.type = MP_ERR; return o; }
        o.ptr = r->p;
        r->p += o.len;
    }
    if (r->err) o.type = MP_ERR;
    return o;
}

/* Skip one whole value. */
static inline void mp_skip(mp_reader *r) {
    mp_obj o = mp_next(r);
    uint64_t n = o.type == MP_ARRAY ? o.len : o.type == MP_MAP ? 2ull * o.len : 0;
    for (uint64_t i = 0; i < n && !r->err; i++) mp_skip(r);
}

static inline int mp_is(const mp_obj *o, const char *s) {
    size_t n = strlen(s);
    return (o->type == MP_STR || o->type == MP_BIN) && o->len == n && memcmp(o->ptr, s, n) == 0;
}

#endif
