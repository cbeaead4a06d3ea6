// A C++ host serving `add` over a socketpair with the stream transport, and
// a client calling it: srpc::executor adapts a lambda, RAII frees the rest.
// Build: g++ -std=c++17 add.cpp $(pkg-config --cflags --libs simplerpc) -pthread
#include <sys/socket.h>

#include <cstdio>
#include <thread>

#include "simplerpc.hpp"

int main() {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return 1;
    // Handles: 1 is `add`; 100 + n is the result n.
    std::thread server([fd = fds[1]] {
        srpc::serve_fd(fd, srpc::executor([](const srpc_call &c, srpc_reply *reply) {
            if (c.kind == SRPC_CALL_KIND_GET_ATTR) return srpc_reply_handle(reply, 1);
            if (c.kind == SRPC_CALL_KIND_CALL) {
                srpc_mp_reader r = srpc_mp_reader_new(c.args.ptr, c.args.len);
                srpc_mp_item n, a, b;
                srpc::check(srpc_mp_read(&r, &n));
                srpc::check(srpc_mp_read(&r, &a));
                srpc::check(srpc_mp_read(&r, &b));
                return srpc_reply_handle(reply, 100 + a.u + b.u);
            }
            srpc::Buf v = srpc::Writer().u64(c.obj - 100).finish();  // materialize
            return srpc_reply_value(reply, v.data(), v.size());
        }));
    });
    {
        srpc::Client client = srpc::Client::from_fd(fds[0]);
        uint64_t add = client.getattr(SRPC_NO_OBJECT, "calc", "add");
        srpc::Buf args = srpc::Writer().array(2).u64(2).u64(5).finish();
        srpc::Buf value = client.materialize(client.call(add, "calc.add", args.slice()));
        srpc_mp_reader r = srpc_mp_reader_new(value.data(), value.size());
        srpc_mp_item sum;
        srpc::check(srpc_mp_read(&r, &sum));
        std::printf("add(2, 5) = %llu\n", static_cast<unsigned long long>(sum.u));
        if (sum.u != 7) return 1;
        // A failure arrives as srpc::Error, with the remote type.
        try {
            client.call(add, "calc.add", srpc::Writer().array(1).string("x").finish().slice());
            return 1;
        } catch (const srpc::Error &e) {
            std::printf("add('x') raised %s: %s\n", e.type().c_str(), e.what());
            if (e.status() != SRPC_STATUS_ERR_REMOTE) return 1;
        }
    }  // the client closes the stream; serve_fd returns
    server.join();
    return 0;
}
