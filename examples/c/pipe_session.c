/*
 * A client session and a server session over a socketpair: no WebSocket at all.
 * The child process runs the server session with the C matrix executor; the
 * parent drives a client session, first one answer at a time
 * (srpc_client_session_receive), then pipelining on promises
 * (srpc_client_session_send_pipelined, _store, _take, _take_failure). Frames
 * travel as a 4-byte big-endian length followed by the bytes. Exits 0 when
 * every check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "matrix_executor.h"
#include "simplerpc.h"
#include "check.h"


static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t n) {
    while (n) {
        ssize_t k = read(fd, p, n);
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int send_frame(int fd, const srpc_buf *b) {
    uint8_t len[4] = {(uint8_t)(b->len >> 24), (uint8_t)(b->len >> 16), (uint8_t)(b->len >> 8), (uint8_t)b->len};
    return write_all(fd, len, 4) || write_all(fd, b->data, b->len);
}

/* Returns a malloc'd frame, or NULL at end of stream. */
static uint8_t *recv_frame(int fd, size_t *n) {
    uint8_t len[4];
    if (read_all(fd, len, 4)) return NULL;
    *n = ((size_t)len[0] << 24) | ((size_t)len[1] << 16) | ((size_t)len[2] << 8) | len[3];
    uint8_t *p = (uint8_t *)malloc(*n ? *n : 1);
    if (read_all(fd, p, *n)) { free(p); return NULL; }
    return p;
}

static int serve(int fd) {
    srpc_executor ex = matrix_executor();
    srpc_server_session *s = NULL;
    if (srpc_server_session_new(&ex, SRPC_EXT_ALL, &s) != SRPC_STATUS_OK) return 1;
    size_t n;
    uint8_t *frame;
    while ((frame = recv_frame(fd, &n)) != NULL) {
        srpc_buf out = {NULL, 0, 0};
        srpc_status st = srpc_server_session_handle(s, frame, n, &out);
        free(frame);
        if (st != SRPC_STATUS_OK || send_frame(fd, &out)) { srpc_buf_free(&out); break; }
        srpc_buf_free(&out);
    }
    srpc_server_session_free(s);
    return 0;
}

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

/* Send one call, receive its response. Returns the status of receive. */
static srpc_status roundtrip(int fd, srpc_client_session *cs, const srpc_call *c, srpc_response *resp) {
    srpc_buf frame = {NULL, 0, 0};
    uint64_t rid;
    CHECK(srpc_client_session_send(cs, c, &frame, &rid) == SRPC_STATUS_OK, "send");
    CHECK(send_frame(fd, &frame) == 0, "write");
    srpc_buf_free(&frame);
    size_t n;
    uint8_t *in = recv_frame(fd, &n);
    CHECK(in != NULL, "server closed");
    srpc_status st = srpc_client_session_receive(cs, in, n, resp);
    free(in);
    return st;
}

static uint64_t object_of(int fd, srpc_client_session *cs, const srpc_call *c) {
    srpc_response r;
    CHECK(roundtrip(fd, cs, c, &r) == SRPC_STATUS_OK, "call kind %u", (unsigned)c->kind);
    CHECK(r.kind == SRPC_RESPONSE_KIND_OBJECT, "expected an object");
    return r.obj;
}

static uint64_t call_fn(int fd, srpc_client_session *cs, uint64_t fn, const char *path, srpc_mp_writer *args) {
    srpc_call c = call_of(SRPC_CALL_KIND_CALL, fn, "", path);
    c.args = srpc_mp_writer_data(args);
    uint64_t id = object_of(fd, cs, &c);
    srpc_mp_writer_clear(args);
    return id;
}

/* Whether msgpack `v` is a float64 array of `n` elements, each `x`. */
static int all_equal(const srpc_buf *v, size_t n, double x) {
    srpc_ndarray a;
    CHECK(srpc_ndarray_decode((srpc_slice){v->data, v->len}, &a) == SRPC_STATUS_OK, "an array");
    if (a.dtype.len != 3 || memcmp(a.dtype.ptr, "<f8", 3) != 0 || a.data.len != n * sizeof(double)) return 0;
    for (size_t j = 0; j < n; j++) {
        double e;
        memcpy(&e, a.data.ptr + j * sizeof e, sizeof e); /* the data may be unaligned */
        if (e != x) return 0;
    }
    return 1;
}

static void proxy_arg(srpc_mp_writer *w, uint64_t id) { srpc_mp_write_proxy(w, id); }

static void promise_arg(srpc_mp_writer *w, uint64_t promise) {
    srpc_mp_write_map(w, 1);
    srpc_mp_write_cstr(w, "__rpc_promise__");
    srpc_mp_write_uint(w, promise & ~SRPC_PROMISE_BIT);
}

/* Build `c` pipelined and write its frame: the promise of its object. */
static uint64_t send_pipelined(int fd, srpc_client_session *cs, const srpc_call *c) {
    srpc_buf frame = {NULL, 0, 0};
    uint64_t promise = 0;
    CHECK(srpc_client_session_send_pipelined(cs, c, &frame, &promise) == SRPC_STATUS_OK, "send_pipelined kind %u", (unsigned)c->kind);
    CHECK((promise & SRPC_PROMISE_BIT) != 0, "a promise has SRPC_PROMISE_BIT set");
    CHECK(send_frame(fd, &frame) == 0, "write");
    srpc_buf_free(&frame);
    return promise;
}

/* Build `c` to be waited for and write its frame: its request id. */
static uint64_t send_only(int fd, srpc_client_session *cs, const srpc_call *c) {
    srpc_buf frame = {NULL, 0, 0};
    uint64_t rid = 0;
    CHECK(srpc_client_session_send(cs, c, &frame, &rid) == SRPC_STATUS_OK, "send kind %u", (unsigned)c->kind);
    CHECK(send_frame(fd, &frame) == 0, "write");
    srpc_buf_free(&frame);
    return rid;
}

/* Read frames into the session until request `rid` is answered; write the
 * ids they answered to `ids` (at most `max`, counted in *n), then take the
 * answer. Returns the status of srpc_client_session_take. */
static srpc_status wait_for(int fd, srpc_client_session *cs, uint64_t rid, uint64_t *ids, size_t max, size_t *n,
                            srpc_response *resp) {
    *n = 0;
    while (!srpc_client_session_is_answered(cs, rid)) {
        size_t len;
        uint8_t *in = recv_frame(fd, &len);
        CHECK(in != NULL, "server closed");
        uint64_t answered = UINT64_MAX;
        CHECK(srpc_client_session_store(cs, in, len, &answered) == SRPC_STATUS_OK, "store");
        free(in);
        CHECK(*n < max, "more frames than requests");
        ids[(*n)++] = answered;
    }
    return srpc_client_session_take(cs, rid, resp);
}

/* The chain of pipe_session's first part again, over promises: each wait is
 * one round trip. `mod` is the matrix module, `eye` a live 3x3 identity. */
static void pipelining(int fd, srpc_client_session *cs, uint64_t mod, uint64_t eye) {
    CHECK(srpc_client_session_promises(cs), "SRPC_EXT_ALL pipelines");
    uint64_t ids[8];
    size_t n;
    srpc_response resp;

    /* materialize(matrix.matmul(eye, matrix.full(3, 3, 2.5))): getattr, call,
     * getattr, call pipelined, the full matrix passed as a promise; every
     * frame is written before any answer is read. */
    srpc_call ga = call_of(SRPC_CALL_KIND_GET_ATTR, mod, "full", "matrix");
    uint64_t full_fn = send_pipelined(fd, cs, &ga);
    srpc_mp_writer *args = srpc_mp_writer_new();
    srpc_mp_write_array(args, 3);
    srpc_mp_write_uint(args, 3);
    srpc_mp_write_uint(args, 3);
    srpc_mp_write_double(args, 2.5);
    srpc_call call = call_of(SRPC_CALL_KIND_CALL, full_fn, "", "matrix.full");
    call.args = srpc_mp_writer_data(args);
    uint64_t full = send_pipelined(fd, cs, &call);
    srpc_mp_writer_clear(args);
    ga.name = S("matmul");
    uint64_t mm_fn = send_pipelined(fd, cs, &ga);
    srpc_mp_write_array(args, 2);
    promise_arg(args, full);
    proxy_arg(args, eye);
    call = call_of(SRPC_CALL_KIND_CALL, mm_fn, "", "matrix.matmul");
    call.args = srpc_mp_writer_data(args);
    uint64_t prod = send_pipelined(fd, cs, &call);
    srpc_mp_writer_free(args);
    srpc_call mat = call_of(SRPC_CALL_KIND_MATERIALIZE, prod, "", "");
    uint64_t rid = send_only(fd, cs, &mat);
    CHECK(!srpc_client_session_is_answered(cs, rid), "nothing read yet");
    CHECK(srpc_client_session_take(cs, rid, &resp) == SRPC_STATUS_ERR_STATE, "no answer to take yet");
    CHECK(wait_for(fd, cs, rid, ids, 8, &n, &resp) == SRPC_STATUS_OK, "take the chain's value");
    uint64_t want[] = {full_fn & ~SRPC_PROMISE_BIT, full & ~SRPC_PROMISE_BIT, mm_fn & ~SRPC_PROMISE_BIT,
                       prod & ~SRPC_PROMISE_BIT, rid};
    CHECK(n == 5, "one round trip: the five answers, %zu read", n);
    for (size_t i = 0; i < 5; i++) CHECK(ids[i] == want[i], "answer %zu is for request %llu", i, (unsigned long long)want[i]);
    CHECK(resp.kind == SRPC_RESPONSE_KIND_VALUE && resp.request_id == rid, "the materialize's own answer");
    CHECK(all_equal(&resp.value, 9, 2.5), "a 3x3 float64 array of 2.5");
    srpc_buf_free(&resp.value);
    CHECK(srpc_client_session_take(cs, rid, &resp) == SRPC_STATUS_ERR_STATE, "an answer is taken once");
    uint64_t none = 12345;
    CHECK(srpc_client_session_take_failure(cs, &none) == SRPC_STATUS_OK && none == 12345, "no failure, nothing written");

    /* A pipelined call that fails fails the chain on it with its own type. */
    ga = call_of(SRPC_CALL_KIND_GET_ATTR, mod, "nope", "matrix");
    uint64_t bad = send_pipelined(fd, cs, &ga);
    call = call_of(SRPC_CALL_KIND_CALL, bad, "", "matrix.nope");
    uint64_t bad_call = send_pipelined(fd, cs, &call);
    mat.obj = bad_call;
    rid = send_only(fd, cs, &mat);
    memset(&resp, 0, sizeof resp);
    CHECK(wait_for(fd, cs, rid, ids, 8, &n, &resp) == SRPC_STATUS_ERR_REMOTE, "materialize of a chain on a failed call");
    CHECK(n == 3, "one round trip");
    CHECK(resp.kind == SRPC_RESPONSE_KIND_ERROR && resp.request_id == rid, "an error response for the materialize");
    CHECK(strcmp(srpc_last_error_type(), "builtins.AttributeError") == 0, "type %s", srpc_last_error_type());
    CHECK(strstr(srpc_last_error_message(), "has no attribute 'nope'") != NULL, "message %s", srpc_last_error_message());
    CHECK(srpc_client_session_take_failure(cs, &none) == SRPC_STATUS_OK && none == 12345, "reported by the materialize: nothing left");

    /* An error nobody waits for is taken after a later successful wait. */
    ga = call_of(SRPC_CALL_KIND_GET_ATTR, mod, "missing", "matrix");
    uint64_t lost = send_pipelined(fd, cs, &ga);
    srpc_call ns = call_of(SRPC_CALL_KIND_GET_NAMESPACE, SRPC_NO_OBJECT, "", "");
    rid = send_only(fd, cs, &ns);
    CHECK(wait_for(fd, cs, rid, ids, 8, &n, &resp) == SRPC_STATUS_OK, "the later wait succeeds");
    CHECK(resp.kind == SRPC_RESPONSE_KIND_NAMESPACE, "namespace");
    srpc_buf_free(&resp.value);
    uint64_t failed = 12345;
    CHECK(srpc_client_session_take_failure(cs, &failed) == SRPC_STATUS_ERR_REMOTE, "the lost error is kept");
    CHECK(failed == (lost & ~SRPC_PROMISE_BIT), "with its request id (%llu)", (unsigned long long)failed);
    CHECK(strcmp(srpc_last_error_type(), "builtins.AttributeError") == 0, "type %s", srpc_last_error_type());
    failed = 12345;
    CHECK(srpc_client_session_take_failure(cs, &failed) == SRPC_STATUS_OK && failed == 12345, "reported once");

    /* Released promises free their objects: the server forgets them once the
     * release has ridden on a request. */
    uint64_t all[] = {full_fn, full, mm_fn, prod, bad, bad_call, lost};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        CHECK(srpc_client_session_release(cs, all[i]) == SRPC_STATUS_OK, "release %zu", i);
    rid = send_only(fd, cs, &ns);
    CHECK(wait_for(fd, cs, rid, ids, 8, &n, &resp) == SRPC_STATUS_OK, "a request to carry the releases");
    srpc_buf_free(&resp.value);
    mat.obj = prod;
    rid = send_only(fd, cs, &mat);
    CHECK(wait_for(fd, cs, rid, ids, 8, &n, &resp) == SRPC_STATUS_ERR_REMOTE, "a released promise names nothing");
    CHECK(strcmp(srpc_last_error_type(), "simplerpc.ProtocolError") == 0, "type %s", srpc_last_error_type());

    /* Without the promise extension nothing is pipelined, and nothing written. */
    srpc_client_session *plain = NULL;
    CHECK(srpc_client_session_new(SRPC_EXT_RELEASE | SRPC_EXT_REQUEST_IDS, &plain) == SRPC_STATUS_OK, "plain session");
    CHECK(!srpc_client_session_promises(plain), "no promises without SRPC_EXT_PROMISE");
    srpc_buf frame = {NULL, 0, 0};
    uint64_t promise = 12345;
    CHECK(srpc_client_session_send_pipelined(plain, &ga, &frame, &promise) == SRPC_STATUS_ERR_PROTOCOL, "refused");
    CHECK(frame.data == NULL && promise == 12345, "out-parameters untouched");
    srpc_client_session_free(plain);
}

static int drive(int fd) {
    srpc_client_session *cs = NULL;
    CHECK(srpc_client_session_new(SRPC_EXT_ALL, &cs) == SRPC_STATUS_OK, "client session");

    srpc_call imp = call_of(SRPC_CALL_KIND_IMPORT_MODULE, SRPC_NO_OBJECT, "matrix", "");
    uint64_t mod = object_of(fd, cs, &imp);
    srpc_call ga = call_of(SRPC_CALL_KIND_GET_ATTR, mod, "eye", "matrix");
    uint64_t eye_fn = object_of(fd, cs, &ga);

    srpc_mp_writer *args = srpc_mp_writer_new();
    srpc_mp_write_array(args, 1);
    srpc_mp_write_uint(args, 3);
    uint64_t eye = call_fn(fd, cs, eye_fn, "matrix.eye", args);

    /* By path, without an object: matrix.full(3, 3, 2.5) */
    srpc_mp_write_array(args, 3);
    srpc_mp_write_uint(args, 3);
    srpc_mp_write_uint(args, 3);
    srpc_mp_write_double(args, 2.5);
    uint64_t full = call_fn(fd, cs, SRPC_NO_OBJECT, "matrix.full", args);

    /* matmul(eye, full) with proxy arguments, pipelined with a getitem. */
    srpc_mp_write_array(args, 2);
    proxy_arg(args, eye);
    proxy_arg(args, full);
    srpc_call mm = call_of(SRPC_CALL_KIND_CALL, SRPC_NO_OBJECT, "", "matrix.matmul");
    mm.args = srpc_mp_writer_data(args);
    srpc_buf f1 = {NULL, 0, 0}, f2 = {NULL, 0, 0};
    uint64_t r1, r2;
    CHECK(srpc_client_session_send(cs, &mm, &f1, &r1) == SRPC_STATUS_OK, "send matmul");
    srpc_mp_writer_clear(args);
    srpc_mp_write_uint(args, 1);
    srpc_call gi = call_of(SRPC_CALL_KIND_GET_ITEM, eye, "", "eye");
    gi.key = srpc_mp_writer_data(args);
    CHECK(srpc_client_session_send(cs, &gi, &f2, &r2) == SRPC_STATUS_OK, "send getitem");
    srpc_mp_writer_clear(args);
    CHECK(send_frame(fd, &f1) == 0 && send_frame(fd, &f2) == 0, "write pipelined");
    srpc_buf_free(&f1);
    srpc_buf_free(&f2);
    srpc_response resp;
    uint64_t product = 0, row = 0;
    for (int i = 0; i < 2; i++) {
        size_t n;
        uint8_t *in = recv_frame(fd, &n);
        CHECK(in != NULL, "server closed");
        CHECK(srpc_client_session_receive(cs, in, n, &resp) == SRPC_STATUS_OK, "pipelined response %d", i);
        free(in);
        CHECK(resp.request_id == (i == 0 ? r1 : r2), "responses in order");
        if (i == 0) product = resp.obj; else row = resp.obj;
    }

    /* Materialize the product: a 3x3 float64 array of 2.5. */
    srpc_call mat = call_of(SRPC_CALL_KIND_MATERIALIZE, product, "", "");
    CHECK(roundtrip(fd, cs, &mat, &resp) == SRPC_STATUS_OK && resp.kind == SRPC_RESPONSE_KIND_VALUE, "materialize");
    CHECK(all_equal(&resp.value, 9, 2.5), "a 3x3 float64 array of 2.5");
    srpc_buf_free(&resp.value);

    /* The row of eye: [0, 1, 0]. */
    mat.obj = row;
    CHECK(roundtrip(fd, cs, &mat, &resp) == SRPC_STATUS_OK, "materialize row");
    srpc_buf_free(&resp.value);

    /* A failing call: shapes do not align. */
    srpc_mp_write_array(args, 2);
    proxy_arg(args, full);
    proxy_arg(args, row);
    mm.args = srpc_mp_writer_data(args);
    CHECK(roundtrip(fd, cs, &mm, &resp) == SRPC_STATUS_ERR_REMOTE, "matmul of a 3x3 and a 1x3 must fail");
    CHECK(resp.kind == SRPC_RESPONSE_KIND_ERROR, "the failed request's response says so");
    srpc_mp_writer_free(args);
    CHECK(strcmp(srpc_last_error_type(), "builtins.ValueError") == 0, "type %s", srpc_last_error_type());
    CHECK(strstr(srpc_last_error_message(), "shapes do not align") != NULL, "message");

    /* Release the product; using it afterwards is a clear error. */
    CHECK(srpc_client_session_release(cs, product) == SRPC_STATUS_OK, "release");
    srpc_call ns = call_of(SRPC_CALL_KIND_GET_NAMESPACE, SRPC_NO_OBJECT, "", "");
    CHECK(roundtrip(fd, cs, &ns, &resp) == SRPC_STATUS_OK && resp.kind == SRPC_RESPONSE_KIND_NAMESPACE, "namespace");
    srpc_buf_free(&resp.value);
    mat.obj = product;
    CHECK(roundtrip(fd, cs, &mat, &resp) == SRPC_STATUS_ERR_REMOTE, "use after release");
    CHECK(strcmp(srpc_last_error_type(), "simplerpc.UnknownObjectError") == 0, "type %s", srpc_last_error_type());

    pipelining(fd, cs, mod, eye);

    /* Bad arguments are reported, not undefined behaviour. */
    CHECK(srpc_client_session_send(cs, NULL, NULL, NULL) == SRPC_STATUS_ERR_NULL_ARGUMENT, "NULL call");
    srpc_call bad = call_of(SRPC_CALL_KIND_IMPORT_MODULE, SRPC_NO_OBJECT, "", "");
    bad.name.ptr = "\xff\xfe";
    bad.name.len = 2;
    srpc_buf fb = {NULL, 0, 0};
    CHECK(srpc_client_session_send(cs, &bad, &fb, &r1) == SRPC_STATUS_ERR_INVALID_UTF8, "invalid UTF-8");

    srpc_client_session_free(cs);
    printf("pipe_session: all checks passed\n");
    return 0;
}

int main(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) { perror("socketpair"); return 1; }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
        close(sv[0]);
        int rc = serve(sv[1]);
        close(sv[1]);
        _exit(rc);
    }
    close(sv[1]);
    int rc = drive(sv[0]);
    close(sv[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "server process failed\n");
        return 1;
    }
    return rc;
}
