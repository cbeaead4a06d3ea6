/*
 * A WebSocket server whose C executor breaks its contract on purpose, to show
 * that every fault reaches the client as a clear remote error and the server
 * keeps serving. Module "faulty", attributes (called with no arguments):
 *   ok()            -> handle of a value 42 (materialize gives 42)
 *   no_reply()      -> returns SRPC_STATUS_OK without answering
 *   bad_status()    -> returns an error status without answering
 *   null_value()    -> srpc_reply_value(reply, NULL, 8): NULL where bytes were promised
 *   bad_msgpack()   -> answers materialize with bytes that are not msgpack
 *   ghost()         -> a handle the executor never made (materialize then fails)
 *   twice()         -> answers twice (the second answer is refused)
 *   stale()         -> answers through the reply of an earlier call (refused), then properly
 * Prints "PORT <port>" and "TOKEN <token>", stops when stdin says "stop" or closes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simplerpc.h"

enum { H_MODULE = 1, H_OK, H_NO_REPLY, H_BAD_STATUS, H_NULL_VALUE, H_BAD_MSGPACK, H_GHOST_FN, H_TWICE, H_STALE, H_FORTY_TWO, H_GHOST = 999999 };

#define N_NAMES 8
static const char *NAMES[N_NAMES] = {"ok", "no_reply", "bad_status", "null_value", "bad_msgpack", "ghost", "twice", "stale"};

/* The reply pointer of the previous call on this thread (dead by now). */
static _Thread_local srpc_reply *previous_reply = NULL;

static srpc_str S(const char *s) {
    srpc_str r = {s, strlen(s)};
    return r;
}

static srpc_status err(srpc_reply *reply, const char *type, const char *msg) {
    srpc_slice none = {NULL, 0};
    return srpc_reply_error(reply, S(type), S(msg), S(""), none);
}

static srpc_status dispatch(const srpc_call *c, srpc_reply *reply);

static srpc_status on_call(void *ud, void *session, const srpc_call *c, srpc_reply *reply) {
    (void)ud;
    (void)session;
    srpc_status st = dispatch(c, reply);
    previous_reply = reply;
    return st;
}

static srpc_status dispatch(const srpc_call *c, srpc_reply *reply) {
    switch (c->kind) {
    case SRPC_CALL_KIND_IMPORT_MODULE:
        if (c->name.len == 6 && memcmp(c->name.ptr, "faulty", 6) == 0) return srpc_reply_handle(reply, H_MODULE);
        return err(reply, "builtins.ModuleNotFoundError", "only 'faulty' lives here");
    case SRPC_CALL_KIND_GET_ATTR:
        for (int i = 0; i < N_NAMES; i++)
            if (c->name.len == strlen(NAMES[i]) && memcmp(c->name.ptr, NAMES[i], c->name.len) == 0)
                return srpc_reply_handle(reply, (uint64_t)(H_OK + i));
        return err(reply, "builtins.AttributeError", "no such attribute");
    case SRPC_CALL_KIND_CALL:
        switch (c->obj) {
        case H_OK: return srpc_reply_handle(reply, H_FORTY_TWO);
        case H_NO_REPLY: return SRPC_STATUS_OK;
        case H_BAD_STATUS: return SRPC_STATUS_ERR_INVALID_ARGUMENT;
        case H_NULL_VALUE: return srpc_reply_value(reply, NULL, 8);
        case H_BAD_MSGPACK: return srpc_reply_handle(reply, H_BAD_MSGPACK);
        case H_GHOST_FN: return srpc_reply_handle(reply, H_GHOST);
        case H_STALE:
            if (previous_reply && previous_reply != reply && srpc_reply_handle(previous_reply, H_FORTY_TWO) != SRPC_STATUS_ERR_STATE) abort();
            return srpc_reply_handle(reply, H_FORTY_TWO);
        case H_TWICE:
            srpc_reply_handle(reply, H_FORTY_TWO);
            if (srpc_reply_handle(reply, H_FORTY_TWO) != SRPC_STATUS_ERR_STATE) abort();
            return SRPC_STATUS_OK;
        default: return err(reply, "builtins.TypeError", "not callable");
        }
    case SRPC_CALL_KIND_MATERIALIZE:
        if (c->obj == H_FORTY_TWO) {
            uint8_t v = 42;
            return srpc_reply_value(reply, &v, 1);
        }
        if (c->obj == H_BAD_MSGPACK) {
            uint8_t junk[] = {0xc1, 0xff};
            return srpc_reply_value(reply, junk, 2);
        }
        {
            char msg[64];
            snprintf(msg, sizeof msg, "no object under handle %llu", (unsigned long long)c->obj);
            return err(reply, "builtins.KeyError", msg);
        }
    default:
        return err(reply, "builtins.NotImplementedError", "not here");
    }
}

int main(void) {
    srpc_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.host = S("127.0.0.1");
    srpc_executor ex;
    memset(&ex, 0, sizeof ex);
    ex.call = on_call;
    srpc_server *server = NULL;
    if (srpc_server_start(&cfg, &ex, &server) != SRPC_STATUS_OK) {
        fprintf(stderr, "cannot start: %s\n", srpc_last_error_message());
        return 1;
    }
    printf("PORT %u\nTOKEN %s\n", (unsigned)srpc_server_port(server), srpc_server_token(server));
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin) && strncmp(line, "stop", 4) != 0) {
    }
    srpc_server_free(server);
    return 0;
}
