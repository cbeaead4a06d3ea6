/*
 * The stream transport through the C ABI, over a socketpair: one thread
 * serves the matrix executor with srpc_server_serve_fd(), the main thread
 * calls it through srpc_client_connect_fd(), plain and pipelined. Then the
 * refusals: a peer that is no simplerpc server, and a message over the
 * server's max_message_size. Run under valgrind by scripts/test-c.sh.
 * Exits 0 when every check passed.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../examples/c/matrix_executor.h"
#include "simplerpc.h"
#include "../../examples/c/check.h"

static srpc_str S(const char *s) {
    srpc_str r = {s, strlen(s)};
    return r;
}

typedef struct {
    int fd;
    srpc_stream_config config;
    srpc_status status;
    char message[512];
} serving;

static void *serve(void *p) {
    serving *s = (serving *)p;
    srpc_executor ex = matrix_executor();
    s->status = srpc_server_serve_fd(&s->config, &ex, s->fd);
    snprintf(s->message, sizeof s->message, "%s", s->status ? srpc_last_error_message() : "");
    return NULL;
}

static double first_double(const srpc_buf *v) {
    srpc_ndarray a;
    CHECK(srpc_ndarray_decode((srpc_slice){v->data, v->len}, &a) == SRPC_STATUS_OK, "an array");
    double x;
    CHECK(a.data.len >= sizeof x, "array data");
    memcpy(&x, a.data.ptr, sizeof x);
    return x;
}

static void calls(void) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    serving s;
    memset(&s, 0, sizeof s);
    s.fd = sv[1];
    pthread_t t;
    CHECK(pthread_create(&t, NULL, serve, &s) == 0, "server thread");

    srpc_client *c = NULL;
    CHECK(srpc_client_connect_fd(NULL, sv[0], &c) == SRPC_STATUS_OK, "connect_fd: %s", srpc_last_error_message());
    CHECK(srpc_client_extensions(c) == SRPC_EXT_DEFAULT, "the default extensions negotiated in the hello");
    CHECK(srpc_client_promises(c), "promises");
    CHECK(srpc_client_set_liveness(c, 1000, 3000) == SRPC_STATUS_OK, "liveness does nothing on a stream, but is no error");

    uint64_t mod, eye_fn, eye;
    CHECK(srpc_client_import(c, S("matrix"), &mod) == SRPC_STATUS_OK, "import");
    CHECK(srpc_client_getattr(c, mod, S("matrix"), S("eye"), &eye_fn) == SRPC_STATUS_OK, "getattr");
    srpc_mp_writer *args = srpc_mp_writer_new();
    srpc_mp_write_array(args, 1);
    srpc_mp_write_uint(args, 3);
    srpc_slice none = {NULL, 0};
    CHECK(srpc_client_call(c, eye_fn, S("matrix.eye"), srpc_mp_writer_data(args), none, &eye) == SRPC_STATUS_OK,
          "call");
    srpc_mp_writer_clear(args);
    srpc_buf v = {NULL, 0, 0};
    CHECK(srpc_client_materialize(c, eye, &v) == SRPC_STATUS_OK, "materialize");
    CHECK(first_double(&v) == 1.0, "eye(3)[0,0] is 1");
    srpc_buf_free(&v);

    /* A pipelined chain, matrix.full(2, 2, 4.5), and its value: one round trip. */
    uint64_t rt = srpc_client_round_trips(c), full_fn, full;
    srpc_call ga;
    memset(&ga, 0, sizeof ga);
    ga.kind = SRPC_CALL_KIND_GET_ATTR;
    ga.obj = mod;
    ga.name = S("full");
    ga.path = S("matrix");
    CHECK(srpc_client_send_pipelined(c, &ga, &full_fn) == SRPC_STATUS_OK, "pipelined getattr");
    srpc_mp_write_array(args, 3);
    srpc_mp_write_uint(args, 2);
    srpc_mp_write_uint(args, 2);
    srpc_mp_write_double(args, 4.5);
    srpc_call call;
    memset(&call, 0, sizeof call);
    call.kind = SRPC_CALL_KIND_CALL;
    call.obj = full_fn;
    call.path = S("matrix.full");
    call.args = srpc_mp_writer_data(args);
    CHECK(srpc_client_send_pipelined(c, &call, &full) == SRPC_STATUS_OK, "pipelined call");
    srpc_mp_writer_free(args);
    CHECK(srpc_client_materialize(c, full, &v) == SRPC_STATUS_OK, "materialize the chain");
    CHECK(first_double(&v) == 4.5, "full(2, 2, 4.5)[0,0]");
    CHECK(srpc_client_round_trips(c) == rt + 1, "the chain cost one round trip");
    srpc_buf_free(&v);

    /* A remote error keeps the connection usable. */
    CHECK(srpc_client_getattr(c, mod, S("matrix"), S("nope"), &eye_fn) == SRPC_STATUS_ERR_REMOTE, "remote error");
    CHECK(strcmp(srpc_last_error_type(), "builtins.AttributeError") == 0, "type %s", srpc_last_error_type());
    CHECK(srpc_client_materialize(c, eye, &v) == SRPC_STATUS_OK, "still usable");
    srpc_buf_free(&v);

    uint64_t all[] = {mod, eye, full_fn, full};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) CHECK(srpc_client_release(c, all[i]) == SRPC_STATUS_OK, "release");
    srpc_client_free(c);
    CHECK(pthread_join(t, NULL) == 0, "join");
    CHECK(s.status == SRPC_STATUS_OK, "the server ends cleanly when the client closes: %s", s.message);
}

static void refusals(void) {
    /* A peer that is no simplerpc server: named in the error. */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    const char junk[] = "SSH-2.0-OpenSSH_9.6\r\n\n";
    CHECK(write(sv[1], junk, sizeof junk - 1) == (ssize_t)(sizeof junk - 1), "write junk");
    srpc_client *c = NULL;
    CHECK(srpc_client_connect_fd(NULL, sv[0], &c) == SRPC_STATUS_ERR_PROTOCOL, "a wrong peer is refused");
    CHECK(c == NULL, "out-parameter untouched");
    CHECK(strstr(srpc_last_error_message(), "SSH-2.0") != NULL, "names what came: %s", srpc_last_error_message());
    close(sv[1]);
    CHECK(srpc_client_connect_fd(NULL, -1, &c) == SRPC_STATUS_ERR_INVALID_ARGUMENT, "fd -1");
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    close(p[1]);
    CHECK(srpc_client_connect_fd(NULL, p[0], &c) == SRPC_STATUS_ERR_INVALID_ARGUMENT, "a pipe is no socket");
    CHECK(strstr(srpc_last_error_message(), "not a connected stream socket") != NULL, "says so: %s", srpc_last_error_message());
    CHECK(close(p[0]) == -1, "the descriptor was taken over and closed");

    /* A length over the server's limit ends the service, nothing allocated. */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    serving s;
    memset(&s, 0, sizeof s);
    s.fd = sv[1];
    s.config.max_message_size = 1 << 20;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, serve, &s) == 0, "server thread");
    const char hello[] = "simplerpc-stream/1 release\n";
    CHECK(write(sv[0], hello, sizeof hello - 1) == (ssize_t)(sizeof hello - 1), "hello");
    char answer[64];
    CHECK(read(sv[0], answer, sizeof answer) > 0, "the server's hello");
    uint8_t len[8] = {0, 0, 0, 0, 0, 1, 0, 0}; /* 2^40, little-endian */
    CHECK(write(sv[0], len, 8) == 8, "the length");
    CHECK(pthread_join(t, NULL) == 0, "join");
    CHECK(s.status == SRPC_STATUS_ERR_PROTOCOL, "refused: status %u", (unsigned)s.status);
    CHECK(strstr(s.message, "max_message_size") != NULL, "says what to do: %s", s.message);
    close(sv[0]);
}

int main(void) {
    /* A C host ignores SIGPIPE itself (the library leaves signals alone). */
    signal(SIGPIPE, SIG_IGN);
    calls();
    refusals();
    printf("stream_fd: ok\n");
    return 0;
}
