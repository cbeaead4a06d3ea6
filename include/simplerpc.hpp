/*
 * simplerpc.hpp: a thin header-only C++17 wrapper over libsimplerpc
 * (simplerpc.h). RAII owners for the library's objects, an exception for a
 * failed status, and an adapter that makes an executor of a lambda.
 *
 *   srpc::Buf      owns an srpc_buf            (srpc_buf_free)
 *   srpc::Writer   owns an srpc_mp_writer       (msgpack builder)
 *   srpc::Client   owns an srpc_client          (srpc_client_free)
 *   srpc::Server   owns a running srpc_server   (srpc_server_free)
 *   srpc::ServerSession / srpc::ClientSession   the sans-IO sessions
 *   srpc::executor(fn)  an srpc_executor calling `fn(const srpc_call&, srpc_reply*)`
 *
 * Every wrapper call that fails throws srpc::Error carrying the status and
 * the library's message (and, for SRPC_STATUS_ERR_REMOTE, the remote type
 * and traceback). No exception crosses into the library: the executor
 * adapter turns one thrown by the lambda into a remote error.
 */
#ifndef SIMPLERPC_HPP
#define SIMPLERPC_HPP

#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "simplerpc.h"

namespace srpc {

/// A failed srpc_status, with the library's description of it.
class Error : public std::runtime_error {
public:
    Error(srpc_status status, std::string message, std::string type, std::string traceback)
        : std::runtime_error(message.empty() ? std::string(srpc_status_str(status)) : message),
          status_(status), type_(std::move(type)), traceback_(std::move(traceback)) {}
    /// The status the call returned.
    srpc_status status() const noexcept { return status_; }
    /// For SRPC_STATUS_ERR_REMOTE: the remote exception's type ("builtins.ValueError").
    const std::string &type() const noexcept { return type_; }
    /// For SRPC_STATUS_ERR_REMOTE: the remote traceback.
    const std::string &traceback() const noexcept { return traceback_; }

private:
    srpc_status status_;
    std::string type_, traceback_;
};

namespace detail {
inline std::string str_or_empty(const char *s) { return s ? std::string(s) : std::string(); }
}  // namespace detail

/// Throw srpc::Error for a status other than SRPC_STATUS_OK (reading this
/// thread's last error at once, before another srpc_ call replaces it).
inline void check(srpc_status status) {
    if (status != SRPC_STATUS_OK)
        throw Error(status, detail::str_or_empty(srpc_last_error_message()),
                    detail::str_or_empty(srpc_last_error_type()),
                    detail::str_or_empty(srpc_last_error_traceback()));
}

/// A borrowed string for the C API.
inline srpc_str str(std::string_view s) noexcept { return srpc_str{s.data(), s.size()}; }

/// A view of bytes as the C API's borrowed slice.
inline srpc_slice slice(const uint8_t *p, size_t n) noexcept { return srpc_slice{p, n}; }

/// Owns an srpc_buf: freed with srpc_buf_free() when it goes.
class Buf {
public:
    Buf() noexcept : b_{nullptr, 0, nullptr} {}
    explicit Buf(srpc_buf b) noexcept : b_(b) {}
    Buf(const Buf &) = delete;
    Buf &operator=(const Buf &) = delete;
    Buf(Buf &&o) noexcept : b_(o.b_) { o.b_ = srpc_buf{nullptr, 0, nullptr}; }
    Buf &operator=(Buf &&o) noexcept {
        if (this != &o) {
            srpc_buf_free(&b_);
            b_ = o.b_;
            o.b_ = srpc_buf{nullptr, 0, nullptr};
        }
        return *this;
    }
    ~Buf() { srpc_buf_free(&b_); }
    /// For out-parameters: frees what it held, then lends the empty struct.
    srpc_buf *out() noexcept {
        srpc_buf_free(&b_);
        return &b_;
    }
    const uint8_t *data() const noexcept { return b_.data; }
    size_t size() const noexcept { return b_.len; }
    srpc_slice slice() const noexcept { return srpc_slice{b_.data, b_.len}; }
    std::string_view view() const noexcept {
        return std::string_view(reinterpret_cast<const char *>(b_.data), b_.len);
    }

private:
    srpc_buf b_;
};

/// A msgpack builder (srpc_mp_writer). Methods chain:
/// `Writer().array(2).u64(2).u64(5).finish()`.
class Writer {
public:
    Writer() : w_(srpc_mp_writer_new(), &srpc_mp_writer_free) {}
    Writer &nil() { srpc_mp_write_nil(w_.get()); return *this; }
    Writer &boolean(bool v) { srpc_mp_write_bool(w_.get(), v); return *this; }
    Writer &i64(int64_t v) { srpc_mp_write_int(w_.get(), v); return *this; }
    Writer &u64(uint64_t v) { srpc_mp_write_uint(w_.get(), v); return *this; }
    Writer &f64(double v) { srpc_mp_write_double(w_.get(), v); return *this; }
    Writer &string(std::string_view s) { srpc_mp_write_str(w_.get(), str(s)); return *this; }
    Writer &bin(const uint8_t *p, size_t n) { srpc_mp_write_bin(w_.get(), slice(p, n)); return *this; }
    Writer &array(uint32_t n) { srpc_mp_write_array(w_.get(), n); return *this; }
    Writer &map(uint32_t n) { srpc_mp_write_map(w_.get(), n); return *this; }
    Writer &proxy(uint64_t obj) { srpc_mp_write_proxy(w_.get(), obj); return *this; }
    Writer &ndarray(const srpc_ndarray &a) { srpc_mp_write_ndarray(w_.get(), &a); return *this; }
    /// The bytes so far, borrowed until the next write.
    srpc_slice data() const noexcept { return srpc_mp_writer_data(w_.get()); }
    /// Take the bytes (throws if a write failed); the writer is empty again.
    Buf finish() {
        Buf b;
        check(srpc_mp_writer_finish(w_.get(), b.out()));
        return b;
    }

private:
    std::unique_ptr<srpc_mp_writer, void (*)(srpc_mp_writer *)> w_;
};

/// A client connection (srpc_client): WebSocket or stream.
class Client {
public:
    /// Connect over WebSocket.
    Client(std::string_view host, uint16_t port, std::string_view token) {
        srpc_client *c = nullptr;
        check(srpc_client_connect(str(host), port, str(token), &c));
        c_.reset(c);
    }
    /// Connect over a connected stream socket (taken over, closed in every case).
    static Client from_fd(int fd, const srpc_stream_config *config = nullptr) {
        srpc_client *c = nullptr;
        check(srpc_client_connect_fd(config, fd, &c));
        return Client(c);
    }
    srpc_client *get() const noexcept { return c_.get(); }

    uint64_t import(std::string_view module) const {
        uint64_t o = 0;
        check(srpc_client_import(get(), str(module), &o));
        return o;
    }
    uint64_t getattr(uint64_t obj, std::string_view path, std::string_view attr) const {
        uint64_t o = 0;
        check(srpc_client_getattr(get(), obj, str(path), str(attr), &o));
        return o;
    }
    /// Call with msgpack `args` (an array; empty: none) and `kwargs` (a map; empty: none).
    uint64_t call(uint64_t obj, std::string_view path, srpc_slice args = srpc_slice{nullptr, 0},
                  srpc_slice kwargs = srpc_slice{nullptr, 0}) const {
        uint64_t o = 0;
        check(srpc_client_call(get(), obj, str(path), args, kwargs, &o));
        return o;
    }
    /// The object's value, as msgpack.
    Buf materialize(uint64_t obj) const {
        Buf b;
        check(srpc_client_materialize(get(), obj, b.out()));
        return b;
    }
    /// Release an object on the server (never throws: for destructors).
    void release(uint64_t obj) const noexcept { (void)srpc_client_release(get(), obj); }

private:
    explicit Client(srpc_client *c) : c_(c) {}
    struct Free {
        void operator()(srpc_client *c) const noexcept { srpc_client_free(c); }
    };
    std::unique_ptr<srpc_client, Free> c_;
};

/// The callable an executor adapter calls for each request: answer through
/// `reply` (srpc_reply_handle(), srpc_reply_value(), srpc_reply_error()).
/// A status it returns other than SRPC_STATUS_OK, or an exception it
/// throws, reaches the client as a remote error.
using CallFn = std::function<srpc_status(const srpc_call &, srpc_reply *)>;
/// Called when the client no longer uses a handle (see simplerpc.h).
using ReleaseFn = std::function<void(uint64_t handle)>;

namespace detail {
struct Adapter {
    CallFn call;
    ReleaseFn release;
};

inline srpc_status call_trampoline(void *ud, void *, const srpc_call *c, srpc_reply *reply) {
    auto *a = static_cast<Adapter *>(ud);
    try {
        return a->call(*c, reply);
    } catch (const std::exception &e) {
        const char *what = e.what();
        srpc_reply_error(reply, str("builtins.RuntimeError"), str(what ? what : ""), str(""),
                         srpc_slice{nullptr, 0});
        return SRPC_STATUS_OK;
    } catch (...) {
        srpc_reply_error(reply, str("builtins.RuntimeError"), str("a C++ exception of unknown type"),
                         str(""), srpc_slice{nullptr, 0});
        return SRPC_STATUS_OK;
    }
}

inline void release_trampoline(void *ud, void *, uint64_t handle) {
    auto *a = static_cast<Adapter *>(ud);
    if (a->release) {
        try {
            a->release(handle);
        } catch (...) {
            // Nothing can report it: a release has no answer.
        }
    }
}

inline void free_trampoline(void *ud) { delete static_cast<Adapter *>(ud); }
}  // namespace detail

/// An srpc_executor whose callbacks call `call` (and `release`). Its
/// userdata is freed by the server or session that takes it; an executor
/// never taken leaks it, so pass it to a Server or ServerSession (or
/// serve_fd) at once. The lambdas run on the server's threads.
inline srpc_executor executor(CallFn call, ReleaseFn release = nullptr) {
    srpc_executor ex{};
    ex.userdata = new detail::Adapter{std::move(call), std::move(release)};
    ex.call = &detail::call_trampoline;
    ex.release = &detail::release_trampoline;
    ex.free_userdata = &detail::free_trampoline;
    return ex;
}

/// A running WebSocket server (srpc_server): stopped and freed when it goes.
class Server {
public:
    Server(const srpc_server_config &config, const srpc_executor &ex) {
        srpc_server *s = nullptr;
        srpc_status st = srpc_server_start(&config, &ex, &s);
        if (st != SRPC_STATUS_OK && ex.free_userdata) ex.free_userdata(ex.userdata);
        check(st);
        s_.reset(s);
    }
    uint16_t port() const noexcept { return srpc_server_port(s_.get()); }
    std::string token() const { return detail::str_or_empty(srpc_server_token(s_.get())); }
    void stop() { check(srpc_server_stop(s_.get())); }
    srpc_server *get() const noexcept { return s_.get(); }

private:
    struct Free {
        void operator()(srpc_server *s) const noexcept { srpc_server_free(s); }
    };
    std::unique_ptr<srpc_server, Free> s_;
};

/// Serve one client over the connected socket `fd` on this thread until it
/// closes (srpc_server_serve_fd; `fd` is taken over).
inline void serve_fd(int fd, const srpc_executor &ex, const srpc_stream_config *config = nullptr) {
    check(srpc_server_serve_fd(config, &ex, fd));
}

/// A sans-IO server session (srpc_server_session): frames in, frames out.
class ServerSession {
public:
    explicit ServerSession(const srpc_executor &ex, uint32_t extensions = SRPC_EXT_DEFAULT) {
        srpc_server_session *s = nullptr;
        srpc_status st = srpc_server_session_new(&ex, extensions, &s);
        if (st != SRPC_STATUS_OK && ex.free_userdata) ex.free_userdata(ex.userdata);
        check(st);
        s_.reset(s);
    }
    /// Handle one request frame; the one response frame.
    Buf handle(const uint8_t *frame, size_t len) {
        Buf out;
        check(srpc_server_session_handle(s_.get(), frame, len, out.out()));
        return out;
    }
    size_t live_objects() const noexcept { return srpc_server_session_live_objects(s_.get()); }

private:
    struct Free {
        void operator()(srpc_server_session *s) const noexcept { srpc_server_session_free(s); }
    };
    std::unique_ptr<srpc_server_session, Free> s_;
};

/// A sans-IO client session (srpc_client_session).
class ClientSession {
public:
    explicit ClientSession(uint32_t extensions = SRPC_EXT_DEFAULT) {
        srpc_client_session *s = nullptr;
        check(srpc_client_session_new(extensions, &s));
        s_.reset(s);
    }
    /// Build the frame for `call`; its request id goes to `*id` if given.
    Buf send(const srpc_call &call, uint64_t *id = nullptr) {
        Buf frame;
        uint64_t rid = 0;
        check(srpc_client_session_send(s_.get(), &call, frame.out(), &rid));
        if (id) *id = rid;
        return frame;
    }
    /// Take one response frame; throws srpc::Error for a remote exception.
    srpc_response receive(const uint8_t *frame, size_t len) {
        srpc_response r{};
        check(srpc_client_session_receive(s_.get(), frame, len, &r));
        return r;
    }
    srpc_client_session *get() const noexcept { return s_.get(); }

private:
    struct Free {
        void operator()(srpc_client_session *s) const noexcept { srpc_client_session_free(s); }
    };
    std::unique_ptr<srpc_client_session, Free> s_;
};

}  // namespace srpc

#endif  // SIMPLERPC_HPP
