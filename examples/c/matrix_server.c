/*
 * A C host serving the matrix executor over WebSocket.
 *   matrix_server [PORT] [TOKEN] [CERTFILE KEYFILE]
 * With a certificate and key (PEM files) it speaks TLS only (wss://).
 * Prints "PORT <port>" and "TOKEN <token>" lines, serves until its standard
 * input closes (or a line "stop" arrives), then stops cleanly and exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matrix_executor.h"
#include "simplerpc.h"

int main(int argc, char **argv) {
    srpc_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.host.ptr = "127.0.0.1";
    cfg.host.len = strlen(cfg.host.ptr);
    cfg.port = argc > 1 ? (uint16_t)atoi(argv[1]) : 0;
    if (argc > 2) {
        cfg.token.ptr = argv[2];
        cfg.token.len = strlen(argv[2]);
    }
    if (argc > 4) {
        cfg.certfile.ptr = argv[3];
        cfg.certfile.len = strlen(argv[3]);
        cfg.keyfile.ptr = argv[4];
        cfg.keyfile.len = strlen(argv[4]);
    }
    srpc_executor ex = matrix_executor();
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
    srpc_status st = srpc_server_stop(server);
    srpc_server_free(server);
    return st == SRPC_STATUS_OK ? 0 : 1;
}
