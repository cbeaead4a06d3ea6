// The C++ wrapper when the library refuses: srpc::Server on an address in
// use and srpc::ServerSession over an executor whose open fails each throw
// srpc::Error, and the executor's userdata (the lambda) is freed exactly
// once, by whichever side owns it then. Run under valgrind by
// scripts/test-c.sh (a double free is an invalid free there; here the
// count says it).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "simplerpc.hpp"

namespace {
int destroyed = 0;

// Counts its destructions: a lambda capturing one is freed when its
// std::function is.
struct Token {
    ~Token() { ++destroyed; }
};

srpc_executor counted_executor() {
    auto token = std::make_shared<Token>();
    return srpc::executor([token](const srpc_call &, srpc_reply *) { return SRPC_STATUS_OK; });
}

srpc_status refuse_open(void *, void **) { return SRPC_STATUS_ERR_INVALID_ARGUMENT; }

int failures = 0;
void expect(bool ok, const char *what) {
    if (!ok) {
        std::fprintf(stderr, "FAILED: %s\n", what);
        ++failures;
    }
}
}  // namespace

int main() {
    // A port in use: bound and listening here.
    int taken = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (taken < 0 || bind(taken, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
        listen(taken, 1) != 0 || getsockname(taken, reinterpret_cast<sockaddr *>(&a), &alen) != 0) {
        std::perror("listen");
        return 2;
    }
    srpc_server_config cfg{};
    cfg.host = srpc::str("127.0.0.1");
    cfg.port = ntohs(a.sin_port);

    destroyed = 0;
    bool threw = false;
    try {
        srpc::Server server(cfg, counted_executor());
    } catch (const srpc::Error &e) {
        threw = e.status() == SRPC_STATUS_ERR_IO;
    }
    expect(threw, "a server on a port in use throws SRPC_STATUS_ERR_IO");
    expect(destroyed == 1, "the executor of a server that failed to start is freed once");

    destroyed = 0;
    threw = false;
    srpc_executor ex = counted_executor();
    ex.open = &refuse_open;
    try {
        srpc::ServerSession session(ex);
    } catch (const srpc::Error &) {
        threw = true;
    }
    expect(threw, "a session whose open fails throws");
    expect(destroyed == 1, "the executor of a session that failed to open is freed once");

    close(taken);
    if (failures == 0) std::puts("wrapper: refusals free the executor once");
    return failures == 0 ? 0 : 1;
}
