/*
 * The library's msgpack helpers: every dtype round-trips through
 * srpc_ndarray_encode / srpc_ndarray_decode and through the writer and
 * reader inside a larger value; every item type reads back as written;
 * bad input is refused with a message, never read past its end.
 */
#include <stdio.h>
#include <string.h>

#include "simplerpc.h"
#include "../../examples/c/check.h"

static srpc_str S(const char *s) {
    srpc_str r = {s, strlen(s)};
    return r;
}

static const char *DTYPES[] = {"|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8",
                               "<f2", "<f4", "<f8", "<c8", "<c16", ">i4", ">f8"};

static void round_trip(const char *dtype) {
    size_t item = srpc_ndarray_itemsize(S(dtype));
    CHECK(item > 0, "itemsize of %s", dtype);
    uint8_t data[2 * 3 * 16];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7 + 1);
    if (dtype[1] == 'b')
        for (size_t i = 0; i < sizeof data; i++) data[i] &= 1;
    srpc_ndarray a;
    memset(&a, 0, sizeof a);
    a.dtype = S(dtype);
    a.ndim = 2;
    a.shape[0] = 2;
    a.shape[1] = 3;
    a.data.ptr = data;
    a.data.len = 6 * item;

    /* One value. */
    srpc_buf enc = {NULL, 0, NULL};
    CHECK(srpc_ndarray_encode(&a, &enc) == SRPC_STATUS_OK, "encode %s", dtype);
    CHECK(srpc_last_error_message() == NULL, "a success leaves no error");
    srpc_ndarray b;
    srpc_slice v = {enc.data, enc.len};
    CHECK(srpc_ndarray_decode(v, &b) == SRPC_STATUS_OK, "decode %s", dtype);
    CHECK(b.dtype.len == strlen(dtype) && memcmp(b.dtype.ptr, dtype, b.dtype.len) == 0, "dtype %s", dtype);
    CHECK(b.ndim == 2 && b.shape[0] == 2 && b.shape[1] == 3, "shape of %s", dtype);
    CHECK(b.data.len == 6 * item && memcmp(b.data.ptr, data, b.data.len) == 0, "data of %s", dtype);
    CHECK(b.data.ptr >= enc.data && b.data.ptr + b.data.len <= enc.data + enc.len,
          "decoded data points into the value");

    /* The header alone plus the data are the same bytes. */
    srpc_buf head = {NULL, 0, NULL};
    CHECK(srpc_ndarray_header(&a, &head) == SRPC_STATUS_OK, "header %s", dtype);
    CHECK(head.len + a.data.len == enc.len && memcmp(head.data, enc.data, head.len) == 0, "header bytes");
    srpc_buf_free(&head);

    /* Inside a value, with the writer and the reader: [1, array, "end"]. */
    srpc_mp_writer *w = srpc_mp_writer_new();
    srpc_mp_write_array(w, 3);
    srpc_mp_write_uint(w, 1);
    srpc_mp_write_ndarray(w, &a);
    srpc_mp_write_cstr(w, "end");
    srpc_buf all = {NULL, 0, NULL};
    CHECK(srpc_mp_writer_finish(w, &all) == SRPC_STATUS_OK, "finish");
    srpc_mp_writer_free(w);
    srpc_mp_reader r = srpc_mp_reader_new(all.data, all.len);
    srpc_mp_item it;
    CHECK(srpc_mp_read(&r, &it) == SRPC_STATUS_OK && it.type == SRPC_MP_TYPE_ARRAY && it.count == 3, "array");
    CHECK(srpc_mp_read(&r, &it) == SRPC_STATUS_OK && it.type == SRPC_MP_TYPE_UINT && it.u == 1, "1");
    CHECK(srpc_mp_read_ndarray(&r, &b) == SRPC_STATUS_OK, "read_ndarray %s", dtype);
    CHECK(b.data.len == 6 * item && memcmp(b.data.ptr, data, b.data.len) == 0, "data of %s", dtype);
    CHECK(srpc_mp_read(&r, &it) == SRPC_STATUS_OK && srpc_mp_item_is(&it, "end"), "end");
    CHECK(r.pos == r.len, "all read");
    srpc_buf_free(&all);
    srpc_buf_free(&enc);
}

static void every_item_type(void) {
    srpc_mp_writer *w = srpc_mp_writer_new();
    srpc_mp_write_map(w, 1);
    srpc_mp_write_str(w, S("k"));
    srpc_mp_write_array(w, 11);
    srpc_mp_write_nil(w);
    srpc_mp_write_bool(w, true);
    srpc_mp_write_int(w, -5);
    srpc_mp_write_int(w, INT64_MIN);
    srpc_mp_write_uint(w, UINT64_MAX);
    srpc_mp_write_int(w, 300);
    srpc_mp_write_double(w, 2.5);
    uint8_t bytes[3] = {1, 2, 3};
    srpc_slice bin = {bytes, 3};
    srpc_mp_write_bin(w, bin);
    srpc_mp_write_proxy(w, 42);
    uint8_t raw[1] = {0xc2}; /* false, already msgpack */
    srpc_slice rs = {raw, 1};
    srpc_mp_write_raw(w, rs);
    srpc_mp_write_cstr(w, NULL); /* nil */
    srpc_slice view = srpc_mp_writer_data(w);
    CHECK(view.len > 0, "data view");
    srpc_buf out = {NULL, 0, NULL};
    CHECK(srpc_mp_writer_finish(w, &out) == SRPC_STATUS_OK, "finish");
    CHECK(srpc_mp_writer_data(w).len == 0, "finish empties the writer");

    srpc_mp_reader r = srpc_mp_reader_new(out.data, out.len);
    srpc_mp_item it;
#define READ(cond, what) CHECK(srpc_mp_read(&r, &it) == SRPC_STATUS_OK && (cond), what)
    READ(it.type == SRPC_MP_TYPE_MAP && it.count == 1, "map");
    READ(srpc_mp_item_is(&it, "k") && it.type == SRPC_MP_TYPE_STR, "key");
    READ(it.type == SRPC_MP_TYPE_ARRAY && it.count == 11, "array");
    READ(it.type == SRPC_MP_TYPE_NIL, "nil");
    READ(it.type == SRPC_MP_TYPE_BOOL && it.boolean, "true");
    READ(it.type == SRPC_MP_TYPE_INT && it.i == -5, "-5");
    READ(it.type == SRPC_MP_TYPE_INT && it.i == INT64_MIN, "INT64_MIN");
    READ(it.type == SRPC_MP_TYPE_UINT && it.u == UINT64_MAX, "UINT64_MAX");
    READ(it.type == SRPC_MP_TYPE_UINT && it.u == 300 && it.i == 300, "300");
    READ(it.type == SRPC_MP_TYPE_FLOAT && it.f == 2.5, "2.5");
    READ(it.type == SRPC_MP_TYPE_BIN && it.bytes.len == 3 && memcmp(it.bytes.ptr, bytes, 3) == 0, "bin");
    size_t proxy_at = r.pos;
    READ(it.type == SRPC_MP_TYPE_MAP && it.count == 2, "proxy map");
    READ(srpc_mp_item_is(&it, "__rpc_proxy__"), "proxy key");
    r.pos = proxy_at;
    CHECK(srpc_mp_skip(&r) == SRPC_STATUS_OK, "skip the proxy");
    READ(it.type == SRPC_MP_TYPE_BOOL && !it.boolean, "raw false");
    READ(it.type == SRPC_MP_TYPE_NIL, "NULL cstr is nil");
    CHECK(r.pos == r.len, "all read");
#undef READ
    /* At the end: an error naming the offset, and the reader stays put. */
    CHECK(srpc_mp_read(&r, &it) == SRPC_STATUS_ERR_INVALID_ARGUMENT, "read past the end");
    CHECK(strstr(srpc_last_error_message(), "ends early") != NULL, "says it ends early");
    CHECK(r.pos == r.len, "did not move");

    /* Truncated: a str announcing more bytes than there are. */
    r = srpc_mp_reader_new(out.data, 3);
    CHECK(srpc_mp_skip(&r) == SRPC_STATUS_ERR_INVALID_ARGUMENT && r.pos == 0, "truncated skip");
    srpc_buf_free(&out);
    srpc_mp_writer_free(w);
}

static void refusals(void) {
    uint8_t data[8] = {0};
    srpc_ndarray a;
    memset(&a, 0, sizeof a);
    a.dtype = S("<f8");
    a.ndim = 1;
    a.shape[0] = 2; /* needs 16 bytes */
    a.data.ptr = data;
    a.data.len = 8;
    srpc_buf out = {NULL, 0, NULL};
    CHECK(srpc_ndarray_encode(&a, &out) == SRPC_STATUS_ERR_INVALID_ARGUMENT, "short data");
    CHECK(strstr(srpc_last_error_message(), "needs 16") != NULL, "names what it needs: %s",
          srpc_last_error_message());
    CHECK(out.data == NULL, "nothing written");
    a.shape[0] = 1;
    a.dtype = S("<U4");
    CHECK(srpc_ndarray_encode(&a, &out) == SRPC_STATUS_ERR_INVALID_ARGUMENT, "unknown dtype");
    CHECK(srpc_ndarray_itemsize(S("<U4")) == 0, "no itemsize for <U4");

    /* A writer with a bad array reports it at finish. */
    srpc_mp_writer *w = srpc_mp_writer_new();
    srpc_mp_write_ndarray(w, &a);
    CHECK(srpc_mp_writer_finish(w, &out) == SRPC_STATUS_ERR_INVALID_ARGUMENT, "finish reports");
    CHECK(strstr(srpc_last_error_message(), "<U4") != NULL, "names the dtype");
    /* ...and is usable again. */
    srpc_mp_write_uint(w, 7);
    CHECK(srpc_mp_writer_finish(w, &out) == SRPC_STATUS_OK && out.len == 1 && out.data[0] == 7, "reuse");
    srpc_buf_free(&out);

    /* Decoding: not a map, a structured kind, trailing bytes. */
    uint8_t seven[1] = {7};
    srpc_slice s7 = {seven, 1};
    srpc_ndarray b;
    CHECK(srpc_ndarray_decode(s7, &b) == SRPC_STATUS_ERR_INVALID_ARGUMENT, "7 is no array");
    CHECK(strstr(srpc_last_error_message(), "not a map") != NULL, "says why");
    a.dtype = S("<f8");
    srpc_mp_write_map(w, 5);
    srpc_mp_write_bin(w, (srpc_slice){(const uint8_t *)"nd", 2});
    srpc_mp_write_bool(w, true);
    srpc_mp_write_bin(w, (srpc_slice){(const uint8_t *)"type", 4});
    srpc_mp_write_cstr(w, "|V8");
    srpc_mp_write_bin(w, (srpc_slice){(const uint8_t *)"kind", 4});
    srpc_mp_write_bin(w, (srpc_slice){(const uint8_t *)"V", 1});
    srpc_mp_write_bin(w, (srpc_slice){(const uint8_t *)"shape", 5});
    srpc_mp_write_array(w, 1);
    srpc_mp_write_uint(w, 1);
    srpc_mp_write_bin(w, (srpc_slice){(const uint8_t *)"data", 4});
    srpc_mp_write_bin(w, (srpc_slice){data, 8});
    CHECK(srpc_mp_writer_finish(w, &out) == SRPC_STATUS_OK, "finish");
    CHECK(srpc_ndarray_decode((srpc_slice){out.data, out.len}, &b) == SRPC_STATUS_ERR_INVALID_ARGUMENT,
          "structured refused");
    CHECK(strstr(srpc_last_error_message(), "structured") != NULL, "says structured");
    srpc_buf_free(&out);
    srpc_mp_write_ndarray(w, &a);
    srpc_mp_write_nil(w);
    CHECK(srpc_mp_writer_finish(w, &out) == SRPC_STATUS_OK, "finish");
    CHECK(srpc_ndarray_decode((srpc_slice){out.data, out.len}, &b) == SRPC_STATUS_ERR_INVALID_ARGUMENT,
          "trailing byte refused");
    srpc_buf_free(&out);
    srpc_mp_writer_free(w);
}

int main(void) {
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++) round_trip(DTYPES[i]);
    every_item_type();
    refusals();
    printf("msgpack: %zu dtypes round-trip, every item type reads back, bad input refused\n",
           sizeof DTYPES / sizeof DTYPES[0]);
    return 0;
}
