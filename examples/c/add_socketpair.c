/* The smallest C server session: an `add` executor served over a socketpair
 * (srpc_server_serve_fd on a thread), called by a client on the other end.
 * Handles: 1 is `add`, 100 + n is the result n. Exits 0 if add(2, 5) is 7. */
#include <pthread.h>
#include <sys/socket.h>

#include "simplerpc.h"

static srpc_status add(void *ud, void *session, const srpc_call *c, srpc_reply *reply) {
    (void)ud, (void)session;
    if (c->kind == SRPC_CALL_KIND_GET_ATTR) return srpc_reply_handle(reply, 1);
    if (c->kind == SRPC_CALL_KIND_CALL) {
        srpc_mp_reader r = srpc_mp_reader_new(c->args.ptr, c->args.len);
        srpc_mp_item n, a, b;
        if (srpc_mp_read(&r, &n) || srpc_mp_read(&r, &a) || srpc_mp_read(&r, &b)) return srpc_last_error_status();
        return srpc_reply_handle(reply, 100 + a.u + b.u);
    }
    srpc_mp_writer *w = srpc_mp_writer_new(); /* materialize */
    srpc_mp_write_uint(w, c->obj - 100);
    srpc_slice v = srpc_mp_writer_data(w);
    srpc_status st = srpc_reply_value(reply, v.ptr, v.len);
    srpc_mp_writer_free(w);
    return st;
}

static void *serve(void *fd) {
    srpc_executor ex = {NULL, NULL, NULL, add, NULL, NULL};
    srpc_server_serve_fd(NULL, &ex, *(int *)fd);
    return NULL;
}

int main(void) {
    int fds[2];
    pthread_t t;
    socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
    pthread_create(&t, NULL, serve, &fds[1]);
    srpc_client *client = NULL;
    uint64_t fn, sum;
    srpc_client_connect_fd(NULL, fds[0], &client);
    srpc_str none = {NULL, 0}, path = {"calc", 4}, attr = {"add", 3};
    srpc_client_getattr(client, SRPC_NO_OBJECT, path, attr, &fn);
    srpc_mp_writer *w = srpc_mp_writer_new();
    srpc_mp_write_array(w, 2);
    srpc_mp_write_uint(w, 2);
    srpc_mp_write_uint(w, 5);
    srpc_client_call(client, fn, none, srpc_mp_writer_data(w), (srpc_slice){NULL, 0}, &sum);
    srpc_mp_writer_free(w);
    srpc_buf value = {NULL, 0, NULL};
    srpc_client_materialize(client, sum, &value);
    srpc_mp_reader r = srpc_mp_reader_new(value.data, value.len);
    srpc_mp_item seven;
    int ok = srpc_mp_read(&r, &seven) == SRPC_STATUS_OK && seven.u == 7;
    srpc_buf_free(&value);
    srpc_client_free(client); /* closes the stream: serve_fd returns */
    pthread_join(t, NULL);
    return ok ? 0 : 1;
}
