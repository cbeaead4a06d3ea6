/*
 * The C client API against a running matrix server (examples/c/matrix_server):
 *   ws_client PORT TOKEN [CAFILE]
 * With CAFILE the server speaks TLS: every connection is made with
 * srpc_client_connect_config (tls, cafile), and a plain one must fail
 * naming wss://.
 * Uses the convenience functions (import, getattr, call, getitem, eval,
 * execute, materialize, release), the generic srpc_client_request, and
 * promise pipelining (srpc_client_send_pipelined, srpc_client_send,
 * srpc_client_wait, srpc_client_take_failure, srpc_client_round_trips).
 * Exits 0 when every check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simplerpc.h"
#include "../../examples/c/check.h"


static srpc_str S(const char *s) {
    srpc_str r = {s, strlen(s)};
    return r;
}

static srpc_call call_of(srpc_call_kind kind, uint64_t obj, const char *name, const char *path) {
    srpc_call c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.obj = obj;
    c.name = S(name);
    c.path = S(path);
    return c;
}

/* Send `call` without waiting: the promise of its object. */
static uint64_t pipelined(srpc_client *c, const srpc_call *call) {
    uint64_t p = 0;
    CHECK(srpc_client_send_pipelined(c, call, &p) == SRPC_STATUS_OK, "send_pipelined (kind %u)", (unsigned)call->kind);
    CHECK((p & SRPC_PROMISE_BIT) != 0, "a promise has SRPC_PROMISE_BIT set");
    return p;
}

static void proxy_arg(srpc_mp_writer *w, uint64_t id) { srpc_mp_write_proxy(w, id); }

static void promise_arg(srpc_mp_writer *w, uint64_t promise) {
    srpc_mp_write_map(w, 1);
    srpc_mp_write_cstr(w, "__rpc_promise__");
    srpc_mp_write_uint(w, promise & ~SRPC_PROMISE_BIT);
}

/* The elements of a float64 ndarray value, copied into `out` (at most `max`):
 * their number. */
static size_t doubles(const srpc_buf *v, double *out, size_t max) {
    srpc_ndarray a;
    CHECK(srpc_ndarray_decode((srpc_slice){v->data, v->len}, &a) == SRPC_STATUS_OK, "an array");
    CHECK(a.dtype.len == 3 && memcmp(a.dtype.ptr, "<f8", 3) == 0, "float64");
    size_t n = a.data.len / sizeof(double);
    CHECK(n <= max, "array data of %u bytes", (unsigned)a.data.len);
    memcpy(out, a.data.ptr, a.data.len);
    return n;
}

/* Promise pipelining against our server; `eye` is a live 4x4 identity. */
static void promises(srpc_client *c, uint64_t eye) {
    CHECK(srpc_client_promises(c), "our server accepts promises");
    CHECK(srpc_client_extensions(c) & SRPC_EXT_PROMISE, "the promise bit is negotiated");

    /* (a) import, then getattr, call (pipelined) and materialize: one round trip. */
    uint64_t rt = srpc_client_round_trips(c), mod;
    CHECK(srpc_client_import(c, S("matrix"), &mod) == SRPC_STATUS_OK, "import");
    CHECK(srpc_client_round_trips(c) == rt + 1, "the import waits: one round trip");
    rt = srpc_client_round_trips(c);
    /* prod = matrix.matmul(eye, matrix.full(4, 4, 2.5)), the full matrix passed as a promise. */
    srpc_call ga = call_of(SRPC_CALL_KIND_GET_ATTR, mod, "full", "matrix");
    uint64_t full_fn = pipelined(c, &ga);
    srpc_mp_writer *args = srpc_mp_writer_new();
    srpc_mp_write_array(args, 3);
    srpc_mp_write_uint(args, 4);
    srpc_mp_write_uint(args, 4);
    srpc_mp_write_double(args, 2.5);
    srpc_call call = call_of(SRPC_CALL_KIND_CALL, full_fn, "", "matrix.full");
    call.args = srpc_mp_writer_data(args);
    uint64_t full = pipelined(c, &call);
    srpc_mp_writer_clear(args);
    ga.name = S("matmul");
    uint64_t mm_fn = pipelined(c, &ga);
    srpc_mp_write_array(args, 2);
    proxy_arg(args, eye);    /* refs[0]: a proxy */
    promise_arg(args, full); /* refs[1]: a promise */
    call = call_of(SRPC_CALL_KIND_CALL, mm_fn, "", "matrix.matmul");
    call.args = srpc_mp_writer_data(args);
    uint64_t prod = pipelined(c, &call);
    srpc_mp_writer_free(args);
    CHECK(prod != full && full != full_fn, "each pipelined call has its own promise");
    CHECK(srpc_client_round_trips(c) == rt, "nothing waited for yet");
    srpc_buf v = {NULL, 0, 0};
    CHECK(srpc_client_materialize(c, prod, &v) == SRPC_STATUS_OK, "materialize the chain");
    CHECK(srpc_client_round_trips(c) == rt + 1, "the chain cost one round trip, not %llu",
          (unsigned long long)(srpc_client_round_trips(c) - rt));
    double x[16];
    CHECK(doubles(&v, x, 16) == 16, "a 4x4 product");
    for (int i = 0; i < 16; i++) CHECK(x[i] == 2.5, "element %d is %g", i, x[i]);
    srpc_buf_free(&v);
    uint64_t none = 12345;
    CHECK(srpc_client_take_failure(c, &none) == SRPC_STATUS_OK && none == 12345, "no failure, nothing written");

    /* A released promise frees its object: the server forgets it once the
     * release has ridden on a request. */
    CHECK(srpc_client_release(c, prod) == SRPC_STATUS_OK, "release a promise");
    CHECK(srpc_client_materialize(c, eye, &v) == SRPC_STATUS_OK, "a request to carry the release");
    srpc_buf_free(&v);
    CHECK(srpc_client_materialize(c, prod, &v) == SRPC_STATUS_ERR_REMOTE, "a released promise names nothing");
    CHECK(strcmp(srpc_last_error_type(), "simplerpc.ProtocolError") == 0, "type %s", srpc_last_error_type());
    CHECK(v.data == NULL && v.len == 0, "value_out untouched on failure");

    /* (b) A pipelined call that fails fails what is built on it, with its own type. */
    ga = call_of(SRPC_CALL_KIND_GET_ATTR, mod, "nope", "matrix");
    uint64_t bad = pipelined(c, &ga);
    call = call_of(SRPC_CALL_KIND_CALL, bad, "", "matrix.nope");
    uint64_t bad_call = pipelined(c, &call);
    rt = srpc_client_round_trips(c);
    CHECK(srpc_client_materialize(c, bad_call, &v) == SRPC_STATUS_ERR_REMOTE, "materialize of a chain on a failed call");
    CHECK(srpc_client_round_trips(c) == rt + 1, "one round trip");
    CHECK(strcmp(srpc_last_error_type(), "builtins.AttributeError") == 0, "the failed call's own type, not %s", srpc_last_error_type());
    CHECK(strstr(srpc_last_error_message(), "has no attribute 'nope'") != NULL, "message %s", srpc_last_error_message());
    CHECK(v.data == NULL, "value_out untouched on failure");
    CHECK(srpc_client_take_failure(c, &none) == SRPC_STATUS_OK, "reported by the materialize: nothing left");
    CHECK(none == 12345, "request_out untouched when there is no failure");

    /* (c) The error of a pipelined call nobody waits for comes from
     * srpc_client_take_failure after a later successful wait, with its request id. */
    ga = call_of(SRPC_CALL_KIND_GET_ATTR, mod, "missing", "matrix");
    uint64_t lost = pipelined(c, &ga);
    srpc_call mat = call_of(SRPC_CALL_KIND_MATERIALIZE, eye, "", "");
    uint64_t rid = 0;
    CHECK(srpc_client_send(c, &mat, &rid) == SRPC_STATUS_OK, "send");
    CHECK(rid == (lost & ~SRPC_PROMISE_BIT) + 1, "request ids count on from the promise's");
    srpc_response r;
    memset(&r, 0, sizeof r);
    CHECK(srpc_client_wait(c, rid, &r) == SRPC_STATUS_OK, "the later wait succeeds");
    CHECK(r.kind == SRPC_RESPONSE_KIND_VALUE && r.request_id == rid, "its own answer");
    CHECK(doubles(&r.value, x, 16) == 16, "eye(4)");
    for (int i = 0; i < 16; i++) CHECK(x[i] == (i % 5 == 0 ? 1.0 : 0.0), "eye element %d is %g", i, x[i]);
    srpc_buf_free(&r.value);
    uint64_t failed = 12345;
    CHECK(srpc_client_take_failure(c, &failed) == SRPC_STATUS_ERR_REMOTE, "the lost error is kept");
    CHECK(failed == (lost & ~SRPC_PROMISE_BIT), "with its request id (%llu)", (unsigned long long)failed);
    CHECK(strcmp(srpc_last_error_type(), "builtins.AttributeError") == 0, "type %s", srpc_last_error_type());
    CHECK(strstr(srpc_last_error_message(), "'missing'") != NULL, "message %s", srpc_last_error_message());
    failed = 12345;
    CHECK(srpc_client_take_failure(c, &failed) == SRPC_STATUS_OK && failed == 12345, "reported once");

    uint64_t all[] = {full_fn, full, mm_fn, bad, bad_call, lost, mod};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        CHECK(srpc_client_release(c, all[i]) == SRPC_STATUS_OK, "release %zu", i);
}

/* The CA file when the server speaks TLS, else NULL. */
static const char *cafile;

/* Connect as srpc_client_connect_ext does, over TLS when `cafile` is set. */
static srpc_status connect_to(uint16_t port, const char *token, uint32_t ext, srpc_client **out) {
    if (!cafile) return srpc_client_connect_ext(S("127.0.0.1"), port, S(token), ext, out);
    srpc_client_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.host = S("127.0.0.1");
    cfg.port = port;
    cfg.token = S(token);
    cfg.extensions = ext;
    cfg.tls = true;
    cfg.cafile = S(cafile);
    return srpc_client_connect_config(&cfg, out);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    uint16_t port = (uint16_t)atoi(argv[1]);
    cafile = argc > 3 ? argv[3] : NULL;
    srpc_client *bad = NULL;
    CHECK(connect_to(port, "wrong", SRPC_EXT_DEFAULT, &bad) == SRPC_STATUS_ERR_UNAUTHORIZED, "wrong token refused");
    CHECK(bad == NULL, "out-parameter untouched on failure");
    if (cafile) {
        /* A plain client of a TLS server is told to use wss://, and one
           trusting no CA file that exists is told which file. */
        CHECK(srpc_client_connect(S("127.0.0.1"), port, S(argv[2]), &bad) == SRPC_STATUS_ERR_IO, "plain client refused");
        CHECK(strstr(srpc_last_error_message(), "wss://") != NULL, "the error names wss://: %s", srpc_last_error_message());
        srpc_client_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.port = port;
        cfg.token = S(argv[2]);
        cfg.cafile = S("/nonexistent/ca.pem");
        CHECK(srpc_client_connect_config(&cfg, &bad) == SRPC_STATUS_ERR_INVALID_ARGUMENT, "missing CA file refused");
        CHECK(strstr(srpc_last_error_message(), "/nonexistent/ca.pem") != NULL, "the error names the file: %s", srpc_last_error_message());
        CHECK(bad == NULL, "out-parameter untouched on failure");
    }

    srpc_client *c = NULL;
    CHECK(connect_to(port, argv[2], SRPC_EXT_DEFAULT, &c) == SRPC_STATUS_OK, "connect");
    /* srpc_client_connect offers SRPC_EXT_DEFAULT (no tuple marker for a
       host that did not ask for it); the C server accepts the same. */
    CHECK(srpc_client_extensions(c) == SRPC_EXT_DEFAULT, "extensions negotiated with our server");
    CHECK(!(srpc_client_extensions(c) & SRPC_EXT_TUPLE), "no tuple marker unless asked for");

    uint64_t mod, eye_fn, eye, row;
    CHECK(srpc_client_import(c, S("matrix"), &mod) == SRPC_STATUS_OK, "import");
    CHECK(srpc_client_getattr(c, mod, S("matrix"), S("eye"), &eye_fn) == SRPC_STATUS_OK, "getattr");
    srpc_mp_writer *args = srpc_mp_writer_new();
    srpc_mp_write_array(args, 1);
    srpc_mp_write_uint(args, 4);
    srpc_slice none = {NULL, 0};
    CHECK(srpc_client_call(c, eye_fn, S("matrix.eye"), srpc_mp_writer_data(args), none, &eye) == SRPC_STATUS_OK,
          "call");
    srpc_mp_writer_free(args);
    uint8_t key = 2; /* msgpack positive fixint 2 */
    srpc_slice k = {&key, 1};
    CHECK(srpc_client_getitem(c, eye, k, &row) == SRPC_STATUS_OK, "getitem");

    srpc_buf v = {NULL, 0, 0};
    CHECK(srpc_client_materialize(c, row, &v) == SRPC_STATUS_OK, "materialize");
    double x[4];
    CHECK(doubles(&v, x, 4) == 4, "4 doubles");
    CHECK(x[0] == 0 && x[1] == 0 && x[2] == 1 && x[3] == 0, "row 2 of eye(4)");
    srpc_buf_free(&v);
    srpc_buf_free(&v); /* freeing twice is harmless: the buffer was reset */

    promises(c, eye);

    uint64_t ignored;
    CHECK(srpc_client_eval(c, S("1+1"), &ignored) == SRPC_STATUS_ERR_REMOTE, "the matrix executor has no eval");
    CHECK(strcmp(srpc_last_error_type(), "builtins.NotImplementedError") == 0, "type");
    CHECK(srpc_client_execute(c, S("x = 1")) == SRPC_STATUS_ERR_REMOTE, "nor execute");

    /* The generic request, and a release that rides on it. */
    CHECK(srpc_client_release(c, row) == SRPC_STATUS_OK, "release");
    srpc_call call;
    memset(&call, 0, sizeof call);
    call.kind = SRPC_CALL_KIND_MATERIALIZE;
    call.obj = row;
    srpc_response r;
    CHECK(srpc_client_request(c, &call, &r) == SRPC_STATUS_OK, "materialize the released row: its release rides on this request");
    srpc_buf_free(&r.value);
    memset(&r, 0, sizeof r); /* a zeroed response would read as an OBJECT if left unwritten */
    CHECK(srpc_client_request(c, &call, &r) == SRPC_STATUS_ERR_REMOTE, "now it is gone");
    CHECK(r.kind == SRPC_RESPONSE_KIND_ERROR && r.obj == SRPC_NO_OBJECT && r.value.len == 0, "an error response is written");
    CHECK(strcmp(srpc_last_error_type(), "simplerpc.UnknownObjectError") == 0, "type %s", srpc_last_error_type());

    /* Bad arguments are errors, not crashes. */
    CHECK(srpc_client_import(c, S("matrix"), NULL) == SRPC_STATUS_ERR_NULL_ARGUMENT, "NULL out");
    srpc_str broken = {NULL, 3};
    CHECK(srpc_client_import(c, broken, &ignored) == SRPC_STATUS_ERR_NULL_ARGUMENT, "NULL with a length");
    CHECK(srpc_client_request(NULL, &call, &r) == SRPC_STATUS_ERR_NULL_ARGUMENT, "NULL client");
    call.kind = 42;
    CHECK(srpc_client_request(c, &call, &r) == SRPC_STATUS_ERR_INVALID_ARGUMENT, "a kind that is not an srpc_call_kind");

    srpc_client_free(c);

    /* Asking for every extension: this server's executor did not ask for the
       tuple marker, so it is left out. */
    srpc_client *all = NULL;
    CHECK(connect_to(port, argv[2], SRPC_EXT_ALL, &all) == SRPC_STATUS_OK, "connect_ext");
    CHECK(srpc_client_extensions(all) == SRPC_EXT_DEFAULT, "tuple not accepted by a C server that did not ask");
    srpc_client_free(all);
    printf("ws_client%s: all checks passed\n", cafile ? " (TLS)" : "");
    return 0;
}
