/*
 * Edges of the C API, each as a C user meets it, over a real socketpair
 * (srpc_server_serve_fd on a thread, srpc_client_connect_fd) and through
 * the sans-IO sessions:
 * - an empty `args` slice means no arguments (the executor gets `[]`);
 * - SRPC_STATUS_ERR_REMOTE writes the response, kind SRPC_RESPONSE_KIND_ERROR;
 * - a success clears srpc_last_error_message();
 * - messages name C things (SRPC_*, srpc_*), never Rust enum variants.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "simplerpc.h"
#include "../../examples/c/check.h"

static srpc_str S(const char *s) {
    srpc_str r = {s, strlen(s)};
    return r;
}

static const srpc_slice NONE = {NULL, 0};
static const srpc_str NOSTR = {NULL, 0};

/* Handles: the two functions, and RESULT + n for a result n. */
enum { ZERO = 1, ADD = 2, RESULT = 100 };

/* `zero()` takes no arguments; `add(a, b)` adds two uints; getattr
 * "silent" answers nothing; getattr "badstatus" fails with a status. */
static srpc_status call(void *ud, void *session, const srpc_call *c, srpc_reply *reply) {
    (void)ud;
    (void)session;
    if (c->kind == SRPC_CALL_KIND_GET_ATTR) {
        if (c->name.len == 4 && memcmp(c->name.ptr, "zero", 4) == 0) return srpc_reply_handle(reply, ZERO);
        if (c->name.len == 3 && memcmp(c->name.ptr, "add", 3) == 0) return srpc_reply_handle(reply, ADD);
        if (c->name.len == 6 && memcmp(c->name.ptr, "silent", 6) == 0) return SRPC_STATUS_OK;
        return SRPC_STATUS_ERR_INVALID_ARGUMENT;
    }
    if (c->kind == SRPC_CALL_KIND_CALL && c->obj == ZERO) {
        /* Exactly an empty array. */
        if (c->args.len == 1 && c->args.ptr[0] == 0x90) return srpc_reply_handle(reply, RESULT + 0);
        return srpc_reply_error(reply, S("builtins.TypeError"), S("zero() got arguments"), NOSTR, NONE);
    }
    if (c->kind == SRPC_CALL_KIND_CALL && c->obj == ADD) {
        srpc_mp_reader r = srpc_mp_reader_new(c->args.ptr, c->args.len);
        srpc_mp_item n, a, b;
        if (srpc_mp_read(&r, &n) || n.count != 2 || srpc_mp_read(&r, &a) || a.type != SRPC_MP_TYPE_UINT ||
            srpc_mp_read(&r, &b) || b.type != SRPC_MP_TYPE_UINT)
            return srpc_reply_error(reply, S("builtins.TypeError"), S("add(a, b) takes two uints"),
                                    S("Traceback: add\n"), NONE);
        return srpc_reply_handle(reply, RESULT + a.u + b.u);
    }
    if (c->kind == SRPC_CALL_KIND_MATERIALIZE && c->obj >= RESULT) {
        srpc_mp_writer *w = srpc_mp_writer_new();
        srpc_mp_write_uint(w, c->obj - RESULT);
        srpc_slice v = srpc_mp_writer_data(w);
        srpc_status st = srpc_reply_value(reply, v.ptr, v.len);
        srpc_mp_writer_free(w);
        return st;
    }
    return SRPC_STATUS_ERR_INVALID_ARGUMENT;
}

/* How many times each handle was released (sans-IO test only). */
static unsigned released_zero, released_result, released_other;

static void on_release(void *ud, void *session, uint64_t handle) {
    (void)ud;
    (void)session;
    if (handle == ZERO) released_zero++;
    else if (handle >= RESULT) released_result++;
    else released_other++;
}

static void *serve(void *arg) {
    srpc_executor ex;
    memset(&ex, 0, sizeof ex);
    ex.call = call;
    srpc_status st = srpc_server_serve_fd(NULL, &ex, *(int *)arg);
    return (void *)(uintptr_t)st;
}

static int no_rust_names(const char *m) { return m && strstr(m, "Srpc") == NULL && strstr(m, "::") == NULL; }

static uint64_t getattr(srpc_client *c, const char *name) {
    uint64_t obj = 0;
    CHECK(srpc_client_getattr(c, SRPC_NO_OBJECT, S("edges"), S(name), &obj) == SRPC_STATUS_OK, "getattr %s", name);
    return obj;
}

static void over_a_socket(void) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, serve, &sv[1]) == 0, "thread");
    srpc_client *c = NULL;
    CHECK(srpc_client_connect_fd(NULL, sv[0], &c) == SRPC_STATUS_OK, "connect_fd");

    /* Empty args: no arguments. */
    uint64_t zero = getattr(c, "zero"), res = 0;
    CHECK(srpc_client_call(c, zero, S("edges.zero"), NONE, NONE, &res) == SRPC_STATUS_OK,
          "zero() with empty args");
    srpc_buf v = {NULL, 0, NULL};
    CHECK(srpc_client_materialize(c, res, &v) == SRPC_STATUS_OK && v.len == 1 && v.data[0] == 0, "zero() is 0");
    srpc_buf_free(&v);

    /* A remote error writes the response. */
    uint64_t add = getattr(c, "add");
    srpc_mp_writer *w = srpc_mp_writer_new();
    srpc_mp_write_array(w, 1);
    srpc_mp_write_cstr(w, "x");
    srpc_call call;
    memset(&call, 0, sizeof call);
    call.kind = SRPC_CALL_KIND_CALL;
    call.obj = add;
    call.path = S("edges.add");
    call.args = srpc_mp_writer_data(w);
    srpc_response r;
    memset(&r, 0x5a, sizeof r); /* garbage: must be overwritten */
    CHECK(srpc_client_request(c, &call, &r) == SRPC_STATUS_ERR_REMOTE, "add('x') fails remotely");
    CHECK(r.kind == SRPC_RESPONSE_KIND_ERROR, "kind is SRPC_RESPONSE_KIND_ERROR, not %u", (unsigned)r.kind);
    CHECK(r.obj == SRPC_NO_OBJECT && r.value.data == NULL && r.value.len == 0, "no object, no value");
    CHECK(strcmp(srpc_last_error_type(), "builtins.TypeError") == 0, "type");
    CHECK(strcmp(srpc_last_error_message(), "add(a, b) takes two uints") == 0, "message");
    CHECK(strcmp(srpc_last_error_traceback(), "Traceback: add\n") == 0, "traceback");
    srpc_buf_free(&r.value);

    /* A success clears it. */
    srpc_mp_writer_free(w);
    w = srpc_mp_writer_new();
    srpc_mp_write_array(w, 2);
    srpc_mp_write_uint(w, 2);
    srpc_mp_write_uint(w, 5);
    srpc_buf args = {NULL, 0, NULL};
    CHECK(srpc_mp_writer_finish(w, &args) == SRPC_STATUS_OK, "finish");
    srpc_mp_writer_free(w);
    CHECK(srpc_client_call(c, add, S("edges.add"), (srpc_slice){args.data, args.len}, NONE, &res) ==
              SRPC_STATUS_OK, "add(2, 5)");
    srpc_buf_free(&args);
    CHECK(srpc_last_error_message() == NULL && srpc_last_error_type() == NULL, "a success clears the last error");
    CHECK(srpc_last_error_status() == SRPC_STATUS_OK, "status OK");
    CHECK(srpc_client_materialize(c, res, &v) == SRPC_STATUS_OK && v.len == 1 && v.data[0] == 7, "2 + 5 = 7");
    srpc_buf_free(&v);

    /* Messages in C names. */
    uint64_t obj = 0;
    CHECK(srpc_client_getattr(c, SRPC_NO_OBJECT, S("edges"), S("silent"), &obj) == SRPC_STATUS_ERR_REMOTE,
          "an executor that answers nothing");
    CHECK(no_rust_names(srpc_last_error_message()) && strstr(srpc_last_error_message(), "getattr"),
          "names the request: %s", srpc_last_error_message());
    CHECK(srpc_client_getattr(c, SRPC_NO_OBJECT, S("edges"), S("other"), &obj) == SRPC_STATUS_ERR_REMOTE,
          "an executor that fails with a status");
    CHECK(no_rust_names(srpc_last_error_message()) &&
              strstr(srpc_last_error_message(), "SRPC_STATUS_ERR_INVALID_ARGUMENT"),
          "names the status: %s", srpc_last_error_message());
    memset(&call, 0, sizeof call);
    call.kind = 99;
    CHECK(srpc_client_request(c, &call, &r) == SRPC_STATUS_ERR_INVALID_ARGUMENT, "kind 99");
    CHECK(no_rust_names(srpc_last_error_message()) && strstr(srpc_last_error_message(), "srpc_call_kind"),
          "names the C type: %s", srpc_last_error_message());
    call.kind = SRPC_CALL_KIND_GET_ITEM;
    call.obj = SRPC_NO_OBJECT;
    CHECK(srpc_client_request(c, &call, &r) == SRPC_STATUS_ERR_INVALID_ARGUMENT, "getitem without object");
    CHECK(no_rust_names(srpc_last_error_message()) && strstr(srpc_last_error_message(), "SRPC_NO_OBJECT"),
          "names the constant: %s", srpc_last_error_message());
    CHECK(srpc_client_getitem(c, 5, NONE, &obj) == SRPC_STATUS_ERR_INVALID_ARGUMENT, "empty key");
    CHECK(no_rust_names(srpc_last_error_message()), "key message: %s", srpc_last_error_message());

    srpc_client_free(c);
    void *st = NULL;
    pthread_join(t, &st);
    CHECK((uintptr_t)st == SRPC_STATUS_OK, "serve_fd returned %u", (unsigned)(uintptr_t)st);
}

/* One round trip through the sans-IO sessions. */
static srpc_response round_trip(srpc_client_session *client, srpc_server_session *server, const srpc_call *c) {
    srpc_buf frame = {NULL, 0, NULL}, answer = {NULL, 0, NULL};
    uint64_t id;
    srpc_response r;
    CHECK(srpc_client_session_send(client, c, &frame, &id) == SRPC_STATUS_OK, "send");
    CHECK(srpc_server_session_handle(server, frame.data, frame.len, &answer) == SRPC_STATUS_OK, "handle");
    CHECK(srpc_client_session_receive(client, answer.data, answer.len, &r) == SRPC_STATUS_OK, "receive");
    srpc_buf_free(&frame);
    srpc_buf_free(&answer);
    return r;
}

/* The sans-IO sessions, frames handed over by hand: empty args, and the
 * release rules the header states (once per distinct handle, when its last
 * id goes; every remaining handle when the session ends). */
static void sessions(void) {
    srpc_executor ex;
    memset(&ex, 0, sizeof ex);
    ex.call = call;
    ex.release = on_release;
    srpc_server_session *server = NULL;
    srpc_client_session *client = NULL;
    CHECK(srpc_server_session_new(&ex, SRPC_EXT_DEFAULT, &server) == SRPC_STATUS_OK, "server session");
    CHECK(srpc_client_session_new(SRPC_EXT_DEFAULT, &client) == SRPC_STATUS_OK, "client session");
    srpc_call get;
    memset(&get, 0, sizeof get);
    get.kind = SRPC_CALL_KIND_GET_ATTR;
    get.obj = SRPC_NO_OBJECT;
    get.name = S("zero");
    get.path = S("edges");
    /* The same handle (ZERO) twice: two ids. */
    srpc_response a = round_trip(client, server, &get);
    srpc_response b = round_trip(client, server, &get);
    CHECK(a.kind == SRPC_RESPONSE_KIND_OBJECT && b.kind == SRPC_RESPONSE_KIND_OBJECT && a.obj != b.obj,
          "two ids for one handle");
    /* zero() with empty args and kwargs. */
    srpc_call c;
    memset(&c, 0, sizeof c);
    c.kind = SRPC_CALL_KIND_CALL;
    c.obj = a.obj;
    c.path = S("edges.zero");
    srpc_response z = round_trip(client, server, &c);
    CHECK(z.kind == SRPC_RESPONSE_KIND_OBJECT, "zero() answered with an object");
    CHECK(srpc_server_session_live_objects(server) == 3, "three live ids");
    /* Releasing one of the two ids releases nothing... */
    CHECK(srpc_client_session_release(client, a.obj) == SRPC_STATUS_OK, "release a");
    srpc_response d = round_trip(client, server, &get); /* carries the release; a third id */
    CHECK(released_zero == 0, "ZERO still named by another id");
    CHECK(srpc_server_session_live_objects(server) == 3, "a gone, a new one in");
    /* ...releasing the last ids releases the handle, once. */
    CHECK(srpc_client_session_release(client, b.obj) == SRPC_STATUS_OK, "release b");
    CHECK(srpc_client_session_release(client, d.obj) == SRPC_STATUS_OK, "release d");
    memset(&c, 0, sizeof c);
    c.kind = SRPC_CALL_KIND_MATERIALIZE;
    c.obj = z.obj;
    srpc_response m = round_trip(client, server, &c);
    CHECK(m.kind == SRPC_RESPONSE_KIND_VALUE && m.value.len == 1 && m.value.data[0] == 0, "zero() is 0");
    srpc_buf_free(&m.value);
    CHECK(released_zero == 1 && released_result == 0, "ZERO released once, when its last id went");
    /* The session's end releases every handle still held, once each. */
    srpc_client_session_free(client);
    srpc_server_session_free(server);
    CHECK(released_zero == 1, "ZERO not released again at the end (%u times)", released_zero);
    CHECK(released_result == 1 && released_other == 0, "the result released once");
}

int main(void) {
    over_a_socket();
    sessions();
    printf("edges: empty args, remote error responses, cleared errors, C names\n");
    return 0;
}
