/*
 * The C client API against a running matrix server (examples/c/matrix_server):
 *   ws_client PORT TOKEN
 * Uses the convenience functions (import, getattr, call, getitem, eval,
 * execute, materialize, release) and the generic srpc_client_request.
 * Exits 0 when every check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../examples/c/mini_msgpack.h"
#include "simplerpc.h"
#include "../../examples/c/check.h"


static srpc_str S(const char *s) {
    srpc_str r = {s, strlen(s)};
    return r;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    uint16_t port = (uint16_t)atoi(argv[1]);
    srpc_client *bad = NULL;
    CHECK(srpc_client_connect(S("127.0.0.1"), port, S("wrong"), &bad) == SRPC_STATUS_ERR_UNAUTHORIZED, "wrong token refused");
    CHECK(bad == NULL, "out-parameter untouched on failure");

    srpc_client *c = NULL;
    CHECK(srpc_client_connect(S("127.0.0.1"), port, S(argv[2]), &c) == SRPC_STATUS_OK, "connect");
    CHECK(srpc_client_extensions(c) == SRPC_EXT_ALL, "extensions negotiated with our server");

    uint64_t mod, eye_fn, eye, row;
    CHECK(srpc_client_import(c, S("matrix"), &mod) == SRPC_STATUS_OK, "import");
    CHECK(srpc_client_getattr(c, mod, S("matrix"), S("eye"), &eye_fn) == SRPC_STATUS_OK, "getattr");
    mp_writer args = {NULL, 0, 0};
    mp_array(&args, 1);
    mp_uint(&args, 4);
    srpc_slice a = {args.data, args.len}, none = {NULL, 0};
    CHECK(srpc_client_call(c, eye_fn, S("matrix.eye"), a, none, &eye) == SRPC_STATUS_OK, "call");
    free(args.data);
    uint8_t key = 2; /* msgpack positive fixint 2 */
    srpc_slice k = {&key, 1};
    CHECK(srpc_client_getitem(c, eye, k, &row) == SRPC_STATUS_OK, "getitem");

    srpc_buf v = {NULL, 0, 0};
    CHECK(srpc_client_materialize(c, row, &v) == SRPC_STATUS_OK, "materialize");
    mp_reader rd = {v.data, v.data + v.len, 0};
    mp_obj m = mp_next(&rd);
    int found = 0;
    for (uint32_t i = 0; m.type == MP_MAP && i < m.len; i++) {
        mp_obj key_o = mp_next(&rd);
        if (mp_is(&key_o, "data")) {
            mp_obj d = mp_next(&rd);
            double x[4];
            CHECK(d.len == sizeof x, "4 doubles");
            memcpy(x, d.ptr, sizeof x);
            CHECK(x[0] == 0 && x[1] == 0 && x[2] == 1 && x[3] == 0, "row 2 of eye(4)");
            found = 1;
        } else mp_skip(&rd);
    }
    CHECK(found, "array data");
    srpc_buf_free(&v);
    srpc_buf_free(&v); /* freeing twice is harmless: the buffer was reset */

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
    printf("ws_client: all checks passed\n");
    return 0;
}
