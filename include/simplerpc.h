/*
 * libsimplerpc: the C ABI of simplerpc.
 *
 * Conventions
 * - Every function returns an srpc_status (SRPC_STATUS_OK is 0) unless it cannot fail.
 *   After a failure, srpc_last_error_message() and friends describe it; they
 *   are per thread and valid until the next srpc_ call on that thread. A
 *   success clears them (srpc_last_error_message() is then NULL).
 * - Out-parameters are written only on success, with two exceptions for
 *   SRPC_STATUS_ERR_REMOTE: an srpc_response is also written, with kind
 *   SRPC_RESPONSE_KIND_ERROR (see srpc_response), and the *_take_failure
 *   functions write the id of the request whose error they report.
 * - Borrowed inputs (srpc_str, srpc_slice, const pointers) need only live for
 *   the call. Owned outputs (srpc_buf) belong to the caller, who frees them
 *   with srpc_buf_free(). Opaque objects are freed with their _free function.
 * - msgpack crosses this boundary as it is: what a client passes goes into the
 *   frame byte for byte, and what comes back is the frame's own bytes (an
 *   srpc_buf pointing into the received frame). Executor callbacks get the
 *   request frame's bytes and the handles of its references, proxies and
 *   promises alike (srpc_call).
 * - No Rust panic crosses this boundary: it becomes SRPC_STATUS_ERR_PANIC.
 * - Names: functions are srpc_<object>_<verb>, destructors srpc_<object>_free;
 *   every enum constant is SRPC_<ENUM>_<VARIANT>. An enum value the host hands
 *   in (a callback's srpc_status, srpc_call.kind, a log level) is read as a
 *   plain uint32_t: a number that is no variant is reported, never undefined.
 * - Threads: an srpc_client may be used from any thread (calls are serialised);
 *   srpc_client_session and srpc_server_session from one thread at a time;
 *   executor callbacks of a running srpc_server are called from the server's
 *   threads, several at once (one thread per connected client).
 * - Versions: SRPC_VERSION is this header's, srpc_version() the loaded
 *   library's; the shared library's SONAME is libsimplerpc.so.0.
 *   scripts/install-c.sh installs the library, this header, simplerpc.hpp
 *   (a header-only C++17 wrapper) and a pkg-config file (`simplerpc`).
 *
 * Objects, ids and handles (executors)
 * - A client names remote objects by *object ids* (srpc_response.obj), which
 *   the server session allocates, one per request that returns an object.
 *   An executor names its objects by *handles*, numbers of its own choosing
 *   that it answers with srpc_reply_handle(). The session maps ids to
 *   handles: an executor may answer the same handle to several requests (a
 *   singleton module, a static object), and each answer is a new id naming
 *   that handle.
 * - The release callback runs exactly once per distinct handle, when the
 *   last id naming it goes: when the client releases it
 *   (srpc_client_release(), srpc_client_session_release(), a Python proxy
 *   being collected; applied after the request it rides on has run), or
 *   when the session ends (the client disconnects, srpc_server_stop(),
 *   srpc_server_session_free(), srpc_server_serve_fd() returning), which
 *   releases every handle still held, before `close`. It runs also for
 *   handles the executor treats as static: ignore those. It never runs for a
 *   handle no reply gave, nor twice for one; once released, a handle may be
 *   answered again and starts afresh. A callback that answers a handle and
 *   then returns a failure status has the handle released at once, unless
 *   an id of the client still names it (then when the last one goes). A client
 *   without the release extension (a stock simplerpyc client) releases
 *   nothing before the session ends. srpc_server_session_live_objects()
 *   counts the ids a client holds.
 * - srpc_call.refs[i] are handles the session resolved from the client's
 *   references (see srpc_call), held by the client's ids: the client may
 *   release them after the call, so an executor that keeps an object
 *   reachable from another (an item in a list) counts its own references.
 *
 * Frames, byte streams and ordering
 * - A session speaks in whole frames: srpc_client_session_send() builds one
 *   request frame, srpc_server_session_handle() takes exactly one and
 *   returns exactly one response frame. msgpack does not delimit frames for
 *   the session, so a host carrying frames over a byte stream (a pipe, a
 *   socketpair, TCP) must length-prefix each frame itself (any prefix both
 *   ends agree on; examples/c/pipe_session.c uses 4 bytes big-endian). Or
 *   let the library carry them: srpc_server_serve_fd() and
 *   srpc_client_connect_fd() speak the stream transport (a hello line, then
 *   each frame after its u64 little-endian length; docs/stream-transport.md)
 *   and interoperate with `python -m simplerpc.server --fd N` and
 *   simplerpc.spawn. Message transports (WebSocket) need no prefix: one
 *   message is one frame.
 * - Ordering: the server answers every request exactly once, in the order
 *   the requests came; the transport must keep frames in order (one
 *   connection, first in first out). Request ids count from 0 per session in
 *   send order. A client session pairs the n-th response frame it is fed
 *   with the n-th request it sent, so feed every response frame, in arrival
 *   order, to srpc_client_session_receive() or srpc_client_session_store().
 *   Several requests may be in flight (pipelining); their answers still come
 *   in request order.
 *
 * Values (msgpack)
 * - args is a msgpack array (empty: no arguments), kwargs a msgpack map
 *   (empty: none), key one msgpack value; values come back as msgpack.
 *   srpc_mp_writer builds msgpack and srpc_mp_reader reads it, so a C host
 *   needs no msgpack library of its own.
 * - A numpy array is a map of five entries whose keys are msgpack *bin*,
 *   not str (the msgpack-numpy form):
 *     {b"nd": true, b"type": "<f8", b"kind": b"", b"shape": [d0, d1, ...],
 *      b"data": bin}
 *   `type` is the numpy type string (byte order `<` `>` `|`, kind letter,
 *   item size: `|b1` `|i1` `<i2` `<i4` `<i8` `|u1` `<u2` `<u4` `<u8` `<f2`
 *   `<f4` `<f8` `<c8` `<c16`), `shape` the dimensions, `data` the elements in
 *   C order. A numpy scalar (other than float64, a plain float) is
 *   {b"nd": false, b"type": "<i8", b"data": bin}. `kind` b"V" (structured)
 *   and b"O" (object, data is a pickle) are not for C hosts.
 *   srpc_ndarray_encode(), srpc_ndarray_header(), srpc_ndarray_decode() and
 *   srpc_mp_read_ndarray() write and read this form; see
 *   docs/protocol-reference.md for every value's form (tuples, slices,
 *   proxies, complex numbers).
 */


#ifndef SIMPLERPC_H
#define SIMPLERPC_H

/* Generated by cbindgen from ffi/src. Do not edit: run `cargo build -p simplerpc-ffi`. */

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

/* The version of this header; srpc_version() gives the loaded library's. */
#define SRPC_VERSION "0.2.0"
#define SRPC_VERSION_MAJOR 0
#define SRPC_VERSION_MINOR 2
#define SRPC_VERSION_PATCH 0

/*
 The bit that marks a promise among object ids: an object id with it set
 names the object request `id & ~SRPC_PROMISE_BIT` will return (see
 srpc_client_send_pipelined()). A server never allocates such ids.
 */
#define SRPC_PROMISE_BIT 9223372036854775808ull

/*
 The most dimensions an srpc_ndarray has (numpy's own limit).
 */
#define SRPC_NDARRAY_MAX_DIMS 64

/*
 Extension bit: batched object release (`release`).
 */
#define SRPC_EXT_RELEASE 1

/*
 Extension bit: request ids (`request-id`).
 */
#define SRPC_EXT_REQUEST_IDS 2

/*
 Extension bit: promise pipelining (`promise`; only together with
 SRPC_EXT_REQUEST_IDS, since a promise names a request by its id). See
 srpc_client_session_send_pipelined() and srpc_client_send_pipelined().
 */
#define SRPC_EXT_PROMISE 4

/*
 Extension bit: tuples stay tuples (`tuple`). A tuple travels, at any
 depth of a value (call arguments, keys, map keys, materialized values),
 as the marker map `{"__tuple__": [items...]}`: exactly one entry, the
 str key `"__tuple__"` and an array of the items. A host that reads or
 writes msgpack itself must then make such maps tuples, and may write
 tuples so; without the bit a tuple is a plain array and a `__tuple__`
 map is just a map. See srpc_client_extensions() and
 srpc_reply_extensions() for what a connection negotiated.
 */
#define SRPC_EXT_TUPLE 8

/*
 Extension bit: the `stats` request (`stats`), answered by the server
 session itself with the connection's counters; see
 srpc_client_live_objects(). Never sent to a peer that did not accept it.
 */
#define SRPC_EXT_STATS 16

/*
 Every extension this library speaks. Use it when both ends are simplerpc
 (and the hosts handle the tuple marker, see SRPC_EXT_TUPLE); use 0 to
 speak the reference protocol exactly.
 */
#define SRPC_EXT_ALL 31

/*
 The extensions srpc_client_connect() offers and a server started by
 srpc_server_start() accepts by default: all but SRPC_EXT_TUPLE, which a
 host asks for (srpc_client_connect_ext(), srpc_server_config.extensions)
 when its msgpack handles the tuple marker.
 */
#define SRPC_EXT_DEFAULT (SRPC_EXT_ALL & ~SRPC_EXT_TUPLE)

/*
 "No object": pass as `obj` where a call has no object (it then acts on `path`).
 */
#define SRPC_NO_OBJECT UINT64_MAX

/*
 The ext type srpc_value_split() writes in place of a large bin.
 */
#define SRPC_SPLIT_BIN_EXT 43

/*
 The result of every fallible function. `SRPC_STATUS_OK` is 0.
 */
enum srpc_status
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /*
   Success.
   */
  SRPC_STATUS_OK = 0,
  /*
   A required pointer argument was NULL.
   */
  SRPC_STATUS_ERR_NULL_ARGUMENT = 1,
  /*
   A string argument was not valid UTF-8.
   */
  SRPC_STATUS_ERR_INVALID_UTF8 = 2,
  /*
   An argument was invalid (bad msgpack, bad length, wrong kind).
   */
  SRPC_STATUS_ERR_INVALID_ARGUMENT = 3,
  /*
   A network or OS error (cannot bind, cannot connect).
   */
  SRPC_STATUS_ERR_IO = 4,
  /*
   The server refused the token.
   */
  SRPC_STATUS_ERR_UNAUTHORIZED = 5,
  /*
   The connection is closed or the peer went away.
   */
  SRPC_STATUS_ERR_CLOSED = 6,
  /*
   The remote side raised an exception: see srpc_last_error_type() and friends.
   */
  SRPC_STATUS_ERR_REMOTE = 7,
  /*
   The peer broke the protocol.
   */
  SRPC_STATUS_ERR_PROTOCOL = 8,
  /*
   A Rust panic was caught at the boundary (a bug: please report it).
   */
  SRPC_STATUS_ERR_PANIC = 9,
  /*
   The object is in the wrong state for this call (e.g. already stopped).
   */
  SRPC_STATUS_ERR_STATE = 10,
  /*
   A request got no answer within the client's timeout, or the server
   stopped answering even pings (frozen, or the network is gone); the
   connection is closed.
   */
  SRPC_STATUS_ERR_TIMEOUT = 11,
  /*
   A signal interrupted the wait of a client made interruptible with
   srpc_client_set_interruptible(): the request is still in flight (its
   id is in `response->request_id`). Run the host's signal handlers,
   then wait for it again with srpc_client_wait(), or give it up with
   srpc_client_abandon().
   */
  SRPC_STATUS_INTERRUPTED = 12,
  /*
   Nothing listens at the address connected to (the connection was
   refused): the server is not running there, or on another port.
   */
  SRPC_STATUS_ERR_REFUSED = 13,
};
#ifndef __cplusplus
typedef uint32_t srpc_status;
#endif // __cplusplus

/*
 The kinds of successful response.
 */
enum srpc_response_kind
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /*
   A new object: `obj` holds its id.
   */
  SRPC_RESPONSE_KIND_OBJECT = 0,
  /*
   A value: `value` holds msgpack.
   */
  SRPC_RESPONSE_KIND_VALUE = 1,
  /*
   Done, nothing returned (execute).
   */
  SRPC_RESPONSE_KIND_DONE = 2,
  /*
   A namespace: `value` holds a msgpack map of str to str.
   */
  SRPC_RESPONSE_KIND_NAMESPACE = 3,
  /*
   The remote side raised: see srpc_last_error_type() and friends.
   */
  SRPC_RESPONSE_KIND_ERROR = 4,
};
#ifndef __cplusplus
typedef uint32_t srpc_response_kind;
#endif // __cplusplus

/*
 How much the library logs, from nothing to everything.
 */
enum srpc_log_level
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /*
   Nothing (as a `max_level`; no record has this level).
   */
  SRPC_LOG_LEVEL_OFF = 0,
  /*
   Failures the library could not hide (a client's connection broke).
   */
  SRPC_LOG_LEVEL_ERROR = 1,
  /*
   Something looks wrong (a refused token, an executor that refused a session).
   */
  SRPC_LOG_LEVEL_WARN = 2,
  /*
   Connects and disconnects.
   */
  SRPC_LOG_LEVEL_INFO = 3,
  /*
   Details for debugging.
   */
  SRPC_LOG_LEVEL_DEBUG = 4,
  /*
   Everything.
   */
  SRPC_LOG_LEVEL_TRACE = 5,
};
#ifndef __cplusplus
typedef uint32_t srpc_log_level;
#endif // __cplusplus

/*
 What an srpc_mp_item is.
 */
enum srpc_mp_type
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /*
   nil (None)
   */
  SRPC_MP_TYPE_NIL = 0,
  /*
   a bool: `boolean`
   */
  SRPC_MP_TYPE_BOOL = 1,
  /*
   a negative integer: `i`
   */
  SRPC_MP_TYPE_INT = 2,
  /*
   a non-negative integer: `u` (and `i` too when it fits an int64_t)
   */
  SRPC_MP_TYPE_UINT = 3,
  /*
   a float32 or float64: `f`
   */
  SRPC_MP_TYPE_FLOAT = 4,
  /*
   a UTF-8 string (not checked): `bytes`
   */
  SRPC_MP_TYPE_STR = 5,
  /*
   a bin: `bytes`
   */
  SRPC_MP_TYPE_BIN = 6,
  /*
   an array of `count` items, which follow
   */
  SRPC_MP_TYPE_ARRAY = 7,
  /*
   a map of `count` pairs, which follow (key, value, key, value...)
   */
  SRPC_MP_TYPE_MAP = 8,
  /*
   an ext: `ext_type` and `bytes`
   */
  SRPC_MP_TYPE_EXT = 9,
};
#ifndef __cplusplus
typedef uint32_t srpc_mp_type;
#endif // __cplusplus

/*
 The kinds of call, on a client and in an executor callback.
 */
enum srpc_call_kind
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /*
   Import module `name` (dotted names allowed).
   */
  SRPC_CALL_KIND_IMPORT_MODULE = 0,
  /*
   The builtin called `name`.
   */
  SRPC_CALL_KIND_GET_BUILTIN = 1,
  /*
   Attribute `name` of `obj` (or of what `path` names when `obj` is SRPC_NO_OBJECT).
   */
  SRPC_CALL_KIND_GET_ATTR = 2,
  /*
   Call `obj` (or `path`) with `args` (msgpack array) and `kwargs` (msgpack map).
   */
  SRPC_CALL_KIND_CALL = 3,
  /*
   `obj[key]` with `key` msgpack.
   */
  SRPC_CALL_KIND_GET_ITEM = 4,
  /*
   The value of `obj`, as msgpack.
   */
  SRPC_CALL_KIND_MATERIALIZE = 5,
  /*
   Evaluate expression `name`.
   */
  SRPC_CALL_KIND_EVAL = 6,
  /*
   Execute code `name`.
   */
  SRPC_CALL_KIND_EXECUTE = 7,
  /*
   Install function bytes `payload` under `name`.
   */
  SRPC_CALL_KIND_TELEPORT = 8,
  /*
   The namespace, as a msgpack map of str to str.
   */
  SRPC_CALL_KIND_GET_NAMESPACE = 9,
};
#ifndef __cplusplus
typedef uint32_t srpc_call_kind;
#endif // __cplusplus

/*
 Which trail to build with srpc_trail().
 */
enum srpc_trail_kind
#ifdef __cplusplus
  : uint32_t
#endif // __cplusplus
 {
  /*
   `name`: an imported module's trail (`a` is the module name).
   */
  SRPC_TRAIL_KIND_MODULE = 0,
  /*
   `builtins.name` (`a` is the builtin's name).
   */
  SRPC_TRAIL_KIND_BUILTIN = 1,
  /*
   `eval('expr')` (`a` is the expression).
   */
  SRPC_TRAIL_KIND_EVAL = 2,
  /*
   a teleported function's name (`a`).
   */
  SRPC_TRAIL_KIND_TELEPORT = 3,
  /*
   `parent.attr` (`parent`, `a` is the attribute).
   */
  SRPC_TRAIL_KIND_GETATTR = 4,
  /*
   `parent()` (`parent`).
   */
  SRPC_TRAIL_KIND_CALL = 5,
  /*
   `parent[key]` (`parent`, `key` msgpack).
   */
  SRPC_TRAIL_KIND_GETITEM = 6,
  /*
   `parent[k1, k2]`: `key` is a msgpack array of the tuple's items.
   */
  SRPC_TRAIL_KIND_GETITEM_TUPLE = 7,
};
#ifndef __cplusplus
typedef uint32_t srpc_trail_kind;
#endif // __cplusplus

/*
 A connection to a server. Opaque. May be used from several threads; its
 calls are serialised.
 */
typedef struct srpc_client srpc_client;

/*
 A client session without a transport: builds request frames and takes
 response frames. Use from one thread at a time.
 */
typedef struct srpc_client_session srpc_client_session;

/*
 A msgpack writer: create with srpc_mp_writer_new(), write values with
 the srpc_mp_write_* functions (arrays and maps as a header followed by
 their items, keys and values alternating), take the bytes with
 srpc_mp_writer_finish(), free with srpc_mp_writer_free(). Opaque.
 */
typedef struct srpc_mp_writer srpc_mp_writer;

/*
 Where a callback puts its answer. Opaque; valid only during the callback.
 */
typedef struct srpc_reply srpc_reply;

/*
 A running WebSocket server. Opaque.
 */
typedef struct srpc_server srpc_server;

/*
 A server session without a transport: takes request frames, returns
 response frames, calling the executor in between. Use from one thread at a time.
 */
typedef struct srpc_server_session srpc_server_session;

/*
 A borrowed UTF-8 string: pointer and length (no NUL needed). A NULL `ptr`
 with `len` 0 is the empty string. Valid for the duration of the call.
 */
typedef struct srpc_str {
  /*
   First byte, or NULL when `len` is 0.
   */
  const char *ptr;
  /*
   Length in bytes.
   */
  size_t len;
} srpc_str;

/*
 Where and how a client connects (srpc_client_connect_config()). Zero
 fields take the defaults.
 */
typedef struct srpc_client_config {
  /*
   Server host name or address; empty means "localhost". With TLS, the
   name the server's certificate must list.
   */
  struct srpc_str host;
  /*
   Server port.
   */
  uint16_t port;
  /*
   The token the server printed; empty is refused
   (SRPC_STATUS_ERR_UNAUTHORIZED).
   */
  struct srpc_str token;
  /*
   The extensions to offer (SRPC_EXT_*); 0 means SRPC_EXT_DEFAULT.
   */
  uint32_t extensions;
  /*
   Speak TLS (wss://): the server's certificate is checked against the
   platform's trusted roots, or against `cafile`.
   */
  bool tls;
  /*
   Path of a PEM file of the CA certificates to trust instead of the
   platform's (a lab's own CA); implies `tls`. Empty: none.
   */
  struct srpc_str cafile;
  /*
   Give up connecting after this many milliseconds (the TCP connection
   and the TLS and WebSocket handshakes together):
   SRPC_STATUS_ERR_TIMEOUT. 0: no limit of ours, as in
   srpc_client_connect_timeout().
   */
  uint64_t timeout_ms;
} srpc_client_config;

/*
 Borrowed bytes: pointer and length. A NULL `ptr` with `len` 0 is empty.
 Valid for the duration of the call.
 */
typedef struct srpc_slice {
  /*
   First byte, or NULL when `len` is 0.
   */
  const uint8_t *ptr;
  /*
   Length in bytes.
   */
  size_t len;
} srpc_slice;

/*
 One call: on a client, the request to send; in an executor callback, the
 request to serve (there `obj` is the executor's own handle). Fields a kind
 does not use are ignored (set them to zero).

 In an executor callback, `args`, `kwargs` and `key` are the bytes of the
 request frame exactly as the client wrote them (borrowed, not copied, not
 re-encoded). A reference to an object in them is still the client's
 marker map, in one of two forms:
 - a proxy, `{"__rpc_proxy__": true, "obj_id": ID}`, whose ID is the
   *client's* object id;
 - a promise (the `promise` extension, SRPC_EXT_PROMISE),
   `{"__rpc_promise__": N}`, whose N is the id of an earlier request of
   the connection, standing for the object that request returned.

 Neither number is a handle of this executor: `refs` gives the handle each
 reference stands for. The session has resolved and checked every
 reference (and refused any other map with the key `"__rpc_proxy__"` or
 `"__rpc_promise__"`) before calling back; a call built on a promise whose
 request failed is not passed to the executor at all.
 */
typedef struct srpc_call {
  /*
   What to do (checked: a number that is no srpc_call_kind is
   SRPC_STATUS_ERR_INVALID_ARGUMENT).
   */
  srpc_call_kind kind;
  /*
   The object acted on, or SRPC_NO_OBJECT.
   */
  uint64_t obj;
  /*
   Module, builtin or attribute name, expression, code, or teleport name.
   */
  struct srpc_str name;
  /*
   The human-readable trail to the object (`"env.step"`).
   */
  struct srpc_str path;
  /*
   msgpack array of positional arguments (SRPC_CALL_KIND_CALL); on a
   client, empty means no arguments.
   */
  struct srpc_slice args;
  /*
   msgpack map of keyword arguments (SRPC_CALL_KIND_CALL); on a client,
   empty means none. An executor always gets a map (`0x80` when none).
   */
  struct srpc_slice kwargs;
  /*
   One msgpack value, the key (SRPC_CALL_KIND_GET_ITEM).
   */
  struct srpc_slice key;
  /*
   opaque bytes (SRPC_CALL_KIND_TELEPORT).
   */
  struct srpc_slice payload;
  /*
   Client only (an executor gets NULL): `args` as several buffers that
   make the msgpack array when joined, so that a large array's own
   memory is not joined into one buffer first. On a connection
   (srpc_client_request() and the send functions), a buffer of at least
   64 KiB that is exactly the payload of a bin (the buffers before it
   end with that bin's header, as a msgpack-numpy array's `data` is cut)
   is not copied at all: it is written to the socket from where it lies
   before the call returns. Other buffers are copied once, into the
   frame; a client session (srpc_client_session_send()) copies them
   all. Either way the buffers need only live until the call returns.
   NULL: `args` holds the array.
   */
  const struct srpc_slice *args_parts;
  /*
   The number of buffers in `args_parts`.
   */
  size_t args_parts_len;
  /*
   Client only (an executor gets NULL): `kwargs` as several buffers
   that make the msgpack map when joined, taken as `args_parts` is (on
   a connection a buffer of at least 64 KiB that is exactly a bin's
   payload is written to the socket from where it lies; a client
   session copies them all). NULL: `kwargs` holds the map.
   */
  const struct srpc_slice *kwargs_parts;
  /*
   The number of buffers in `kwargs_parts`.
   */
  size_t kwargs_parts_len;
  /*
   Client only (an executor gets NULL): `key` as several buffers that
   make the msgpack value when joined, taken as `args_parts` is (an
   index that is a large array, `p[mask]`; srpc_trail_parts() gives its
   trail from the same parts). NULL: `key` holds the value.
   */
  const struct srpc_slice *key_parts;
  /*
   The number of buffers in `key_parts`.
   */
  size_t key_parts_len;
  /*
   Executor callbacks only (a client ignores it): the handle each
   reference in `args`, then `kwargs` (or in `key`) stands for, in the
   order the references appear in the bytes, proxies and promises alike;
   the markers themselves carry the client's ids and request ids, not
   handles: replace the i-th map whose key is "__rpc_proxy__" or
   "__rpc_promise__" (counting both kinds together) by `refs[i]`.
   Borrowed for the callback; NULL when `refs_len` is 0.
   */
  const uint64_t *refs;
  /*
   The number of handles in `refs` (the number of references of both kinds).
   */
  size_t refs_len;
} srpc_call;

/*
 Bytes handed to the caller: free with srpc_buf_free(). The library keeps
 what `data` points into alive until then: its own allocation (a frame it
 built), or, for a value taken from a response, the received frame itself,
 which the value's bytes are a part of (they are not copied out of it).
 Zero it (`{NULL, 0, NULL}`) before a call that may leave it unwritten.
 */
typedef struct srpc_buf {
  /*
   The bytes, read-only (NULL when empty).
   */
  const uint8_t *data;
  /*
   Their length.
   */
  size_t len;
  /*
   Private: what keeps the bytes alive (the library's allocation or the
   received frame), released by srpc_buf_free(). Do not change.
   */
  void *owner;
} srpc_buf;

/*
 A response. `value` is owned by the caller: free it with srpc_buf_free().

 Written on success, and also for SRPC_STATUS_ERR_REMOTE (a remote
 exception answered the request): then `kind` is SRPC_RESPONSE_KIND_ERROR,
 `request_id` names the request that failed, `obj` is SRPC_NO_OBJECT and
 `value` is empty (the exception is in srpc_last_error_type() and friends).
 */
typedef struct srpc_response {
  /*
   What came back.
   */
  srpc_response_kind kind;
  /*
   The new object's id (SRPC_RESPONSE_KIND_OBJECT), else SRPC_NO_OBJECT.
   */
  uint64_t obj;
  /*
   The id of the request this answers (counting from 0 per session), from
   srpc_client_session_receive(), srpc_client_session_take(),
   srpc_client_wait() and srpc_client_request(), which writes it as soon
   as the request is sent (whatever happens next, a host can then give
   the request up with srpc_client_abandon()).
   */
  uint64_t request_id;
  /*
   msgpack bytes (SRPC_RESPONSE_KIND_VALUE, SRPC_RESPONSE_KIND_NAMESPACE),
   else empty: the value as the response frame holds it, byte for byte
   (not decoded and encoded again), and `value.data` points into that
   frame, which the buffer keeps alive until srpc_buf_free().
   */
  struct srpc_buf value;
} srpc_response;

/*
 Called once when the library no longer reads memory a host lent it with
 srpc_reply_value_lent(): from any thread, possibly long after the
 callback that lent it has returned (once the answer is written, or
 dropped with its connection).
 */
typedef void (*srpc_lent_release_fn)(void *ctx);

/*
 Receives one log record: its `level` (SRPC_LOG_LEVEL_ERROR to
 SRPC_LOG_LEVEL_TRACE); `target` names the module; both strings are valid
 only during the call. Called from any of the library's threads.
 */
typedef void (*srpc_log_fn)(void *userdata,
                            srpc_log_level level,
                            struct srpc_str target,
                            struct srpc_str message);

/*
 A numpy array as the protocol carries it (the msgpack-numpy form; see
 the overview at the top of this header). Borrowed: `dtype` and `data`
 point into the caller's memory (for srpc_ndarray_encode()) or into the
 decoded bytes (for srpc_ndarray_decode()), which must outlive it.

 `data` is the C-order elements in the byte order `dtype` names; when
 decoded it points into a msgpack value and may be unaligned: memcpy it,
 or check its alignment, before reading it as typed elements.
 */
typedef struct srpc_ndarray {
  /*
   The numpy type string: byte order (`<` little, `>` big, `|` none,
   `=` this machine's) then kind and item size: `|b1`, `|i1`, `<i2`,
   `<i4`, `<i8`, `|u1`, `<u2`, `<u4`, `<u8`, `<f2`, `<f4`, `<f8`,
   `<c8`, `<c16`.
   */
  struct srpc_str dtype;
  /*
   The number of dimensions (0 for a numpy scalar, up to
   SRPC_NDARRAY_MAX_DIMS).
   */
  size_t ndim;
  /*
   The extent of each dimension; entries past `ndim` are ignored.
   */
  uint64_t shape[SRPC_NDARRAY_MAX_DIMS];
  /*
   The elements: product(shape) * item size bytes.
   */
  struct srpc_slice data;
} srpc_ndarray;

/*
 A pull reader over borrowed msgpack bytes (a response's `value`, a
 call's `args`): make it with srpc_mp_reader_new(), read items with
 srpc_mp_read(). Nothing to free. `pos` is the offset of the next item.
 */
typedef struct srpc_mp_reader {
  /*
   The bytes (borrowed; they must outlive the reader and its items).
   */
  const uint8_t *data;
  /*
   Their length.
   */
  size_t len;
  /*
   Offset of the next item.
   */
  size_t pos;
} srpc_mp_reader;

/*
 One msgpack item read by srpc_mp_read(). Only the fields its `type`
 names are set; the others are zero.
 */
typedef struct srpc_mp_item {
  /*
   What was read.
   */
  srpc_mp_type type;
  /*
   SRPC_MP_TYPE_BOOL
   */
  bool boolean;
  /*
   SRPC_MP_TYPE_INT, and SRPC_MP_TYPE_UINT up to INT64_MAX
   */
  int64_t i;
  /*
   SRPC_MP_TYPE_UINT
   */
  uint64_t u;
  /*
   SRPC_MP_TYPE_FLOAT
   */
  double f;
  /*
   SRPC_MP_TYPE_STR, _BIN, _EXT: the payload, pointing into the
   reader's bytes.
   */
  struct srpc_slice bytes;
  /*
   SRPC_MP_TYPE_ARRAY: items; SRPC_MP_TYPE_MAP: pairs.
   */
  uint32_t count;
  /*
   SRPC_MP_TYPE_EXT: the ext's type.
   */
  int8_t ext_type;
} srpc_mp_item;

/*
 How a server listens. Zero fields take the defaults.
 */
typedef struct srpc_server_config {
  /*
   Host to bind ("localhost", "127.0.0.1", "0.0.0.0"); empty means "localhost".
   */
  struct srpc_str host;
  /*
   Port to bind; 0 picks a free port (srpc_server_port() tells which).
   */
  uint16_t port;
  /*
   The token clients must present; empty generates a fresh one
   (srpc_server_token() tells it).
   */
  struct srpc_str token;
  /*
   Largest message accepted, in bytes; 0 means the default (2 GiB).
   */
  uint64_t max_message_size;
  /*
   Most objects one connection may hold at once; 0 means the default
   (1,000,000). A request that would create one more is answered with
   an error of type "simplerpc.ObjectLimitError" until the client
   releases some.
   */
  uint64_t max_objects;
  /*
   Most connections served at once, handshakes included; 0 means the
   default (256). One more is answered HTTP 503 naming the limit.
   */
  uint32_t max_connections;
  /*
   Stack size in bytes of the threads that run executor callbacks; 0
   means the default (8 MiB). At least 65536.
   */
  uint64_t stack_size;
  /*
   Milliseconds a client has, from its accept, to complete the
   WebSocket handshake; 0 means the default (10 000).
   */
  uint64_t handshake_timeout_ms;
  /*
   Milliseconds a client may be silent before it is pinged; 0 means the
   default (10 000).
   */
  uint64_t ping_interval_ms;
  /*
   Milliseconds a client may stay silent, its pings unanswered (or a
   response unread), before it is dropped and its session and objects
   freed; 0 means the default (30 000), UINT64_MAX never. A stock
   simplerpyc client answers pings only during its calls, so for it only
   an unread response counts.
   */
  uint64_t dead_after_ms;
  /*
   The extensions (SRPC_EXT_*) the server accepts when a client offers
   them; 0 means the default, SRPC_EXT_DEFAULT (all but SRPC_EXT_TUPLE).
   Add SRPC_EXT_TUPLE when the executor reads and writes the tuple
   marker (see srpc_reply_extensions()). A stock simplerpyc client
   offers none and always gets the reference protocol.
   */
  uint32_t extensions;
  /*
   Path of the server's certificate chain, a PEM file (its own
   certificate first). With `keyfile` the server speaks only TLS
   (wss://); empty: plain ws://.
   */
  struct srpc_str certfile;
  /*
   Path of the private key of `certfile`, a PEM file; empty: none.
   */
  struct srpc_str keyfile;
} srpc_server_config;

/*
 Opens a session for a newly connected client. Writes the session's own
 pointer (may be NULL) to `*session` and returns SRPC_STATUS_OK, or another
 srpc_status to refuse the client.
 */
typedef srpc_status (*srpc_open_fn)(void *userdata, void **session);

/*
 Closes a session (the client went away); every handle it held was released first.
 */
typedef void (*srpc_close_fn)(void *userdata, void *session);

/*
 Serves one call. Answer through `reply` with exactly one of
 srpc_reply_handle(), srpc_reply_value(), srpc_reply_error() (or nothing,
 for SRPC_CALL_KIND_EXECUTE), then return SRPC_STATUS_OK. `call` and
 `reply` are valid only during the callback and only on its thread: a
 reply answered later, or from another thread, is refused with
 SRPC_STATUS_ERR_STATE. Any other status reports the call as failed.

 `call->args`, `kwargs` and `key` are borrowed from the request frame, as
 the client wrote them: a reference in them is the client's marker map,
 a proxy `{"__rpc_proxy__": true, "obj_id": ID}` or a promise
 `{"__rpc_promise__": N}`, whose number is no handle of this executor;
 the i-th reference of either kind stands for the handle `call->refs[i]`
 (see srpc_call).
 */
typedef srpc_status (*srpc_call_fn)(void *userdata,
                                    void *session,
                                    const struct srpc_call *call,
                                    struct srpc_reply *reply);

/*
 The client no longer uses `handle`: drop the object. Called once per
 distinct handle, when the last object id naming it is released, and for
 every handle still held when the session ends (before `close`); also for
 handles the executor treats as static, which it then ignores. See
 "Objects, ids and handles" at the top of this header.
 */
typedef void (*srpc_release_fn)(void *userdata, void *session, uint64_t handle);

/*
 Frees `userdata` once nothing will call back any more.
 */
typedef void (*srpc_free_fn)(void *userdata);

/*
 An executor given as C callbacks. `call` is required; the others may be NULL.
 The library copies this struct; `userdata` is passed to every callback and
 released with `free_userdata` (if set) when the server or session that
 took it is freed. Callbacks of a running server are called from several
 threads at once (one per client), so `userdata` must be thread-safe;
 the calls of one session never overlap.
 */
typedef struct srpc_executor {
  /*
   Host state passed to every callback.
   */
  void *userdata;
  /*
   Per-client session start (optional).
   */
  srpc_open_fn open;
  /*
   Per-client session end (optional).
   */
  srpc_close_fn close;
  /*
   Serves calls (required).
   */
  srpc_call_fn call;
  /*
   Releases handles (optional).
   */
  srpc_release_fn release;
  /*
   Frees userdata at the end (optional).
   */
  srpc_free_fn free_userdata;
} srpc_executor;

/*
 Limits of a stream server or client. Zero fields take the defaults.
 */
typedef struct srpc_stream_config {
  /*
   Largest message accepted, in bytes; 0 means the default (2 GiB). A
   longer one announced by the peer ends the connection, nothing
   allocated for it.
   */
  uint64_t max_message_size;
  /*
   Server only: most objects the client may hold at once; 0 means the
   default (1,000,000).
   */
  uint64_t max_objects;
  /*
   Client only: milliseconds to wait for the server's hello (a child
   process still starting); 0 means no limit. A server that does not
   answer in time returns SRPC_STATUS_ERR_PROTOCOL. Requests have no
   time limit unless srpc_client_set_timeout() sets one.
   */
  uint64_t hello_timeout_ms;
  /*
   The extensions (SRPC_EXT_*) a server accepts, or a client offers; 0
   means the default, SRPC_EXT_DEFAULT (all but SRPC_EXT_TUPLE). Add
   SRPC_EXT_TUPLE when the executor (or the client's msgpack) reads and
   writes the tuple marker.
   */
  uint32_t extensions;
} srpc_stream_config;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/*
 Connect to `ws://host:port/` presenting `token`, offering the extensions
 SRPC_EXT_DEFAULT. An empty `host` means "localhost"; an empty `token` is
 refused (SRPC_STATUS_ERR_UNAUTHORIZED), and so is a wrong one. Nothing
 listening at the address gives SRPC_STATUS_ERR_REFUSED, another network
 failure SRPC_STATUS_ERR_IO. Against a stock simplerpyc server the
 reference protocol is spoken exactly. Close and free with
 srpc_client_free().

 # Safety
 The strings are valid for their lengths; `client_out` is valid.
 */
srpc_status srpc_client_connect(struct srpc_str host,
                                uint16_t port,
                                struct srpc_str token,
                                struct srpc_client **client_out);

/*
 As srpc_client_connect(), offering the extension bits `extensions`
 (SRPC_EXT_*): SRPC_EXT_ALL when the host's msgpack handles the tuple
 marker (SRPC_EXT_TUPLE). What the server accepted:
 srpc_client_extensions().

 # Safety
 The strings are valid for their lengths; `client_out` is valid.
 */
srpc_status srpc_client_connect_ext(struct srpc_str host,
                                    uint16_t port,
                                    struct srpc_str token,
                                    uint32_t extensions,
                                    struct srpc_client **client_out);

/*
 As srpc_client_connect_ext(), giving up after `timeout_ms` milliseconds
 (0: no limit of ours; the operating system's for the TCP connection, 30 s
 for the handshake): the TCP connection and the WebSocket handshake
 together. Past it, SRPC_STATUS_ERR_TIMEOUT.

 # Safety
 The strings are valid for their lengths; `client_out` is valid.
 */
srpc_status srpc_client_connect_timeout(struct srpc_str host,
                                        uint16_t port,
                                        struct srpc_str token,
                                        uint32_t extensions,
                                        uint64_t timeout_ms,
                                        struct srpc_client **client_out);

/*
 Connect as `config` says (TLS included). A refused certificate, or a
 server that does not speak TLS, is SRPC_STATUS_ERR_IO with a message
 naming the host and the reason (srpc_last_error_message()); nothing
 listening at the address is SRPC_STATUS_ERR_REFUSED, no connection
 within `timeout_ms` SRPC_STATUS_ERR_TIMEOUT. Close and free with
 srpc_client_free().

 # Safety
 `config` points to a valid struct whose strings are valid for their
 lengths; `client_out` is valid.
 */
srpc_status srpc_client_connect_config(const struct srpc_client_config *config,
                                       struct srpc_client **client_out);

/*
 Whether the server accepted promise pipelining (the `promise` extension;
 ours does, a stock simplerpyc server does not).

 # Safety
 `client` is NULL or live.
 */
bool srpc_client_promises(const struct srpc_client *client);

/*
 Send `call` without waiting for its answer, and write the *promise* of
 the object it will return to `*promise_out`: use it as `obj`, or inside
 `args`/`kwargs`/`key` as `{"__rpc_promise__": n}` with `n = promise &
 ~SRPC_PROMISE_BIT`, in later calls, and release it with
 srpc_client_release() like any object id. A chain of such calls and the
 srpc_client_request() (or srpc_client_wait()) that needs its value cost
 one round trip. If the call fails, calls built on it are not run and
 fail with its error (SRPC_STATUS_ERR_REMOTE, with its own type); an error
 nobody waits for is kept for srpc_client_take_failure(). For getattr,
 call, getitem and eval; needs srpc_client_promises() (else
 SRPC_STATUS_ERR_PROTOCOL).

 # Safety
 `client` is live; `call` is a valid srpc_call; `promise_out` is valid.
 */
srpc_status srpc_client_send_pipelined(const struct srpc_client *client,
                                       const struct srpc_call *call,
                                       uint64_t *promise_out);

/*
 Send `call` and return at once with its request id in `*request_out`;
 srpc_client_wait() takes the answer later. Calls sent meanwhile share the
 round trip.

 # Safety
 `client` is live; `call` is a valid srpc_call; `request_out` is valid.
 */
srpc_status srpc_client_send(const struct srpc_client *client,
                             const struct srpc_call *call,
                             uint64_t *request_out);

/*
 Wait for the answer of the request srpc_client_send() numbered `request`,
 and write it as srpc_client_request() does (its `request_id` set). A
 request with no answer to take (never sent, sent pipelined, or already
 taken) returns SRPC_STATUS_ERR_STATE; the connection is fine.

 # Safety
 `client` is live; `response` is valid for writing an srpc_response.
 */
srpc_status srpc_client_wait(const struct srpc_client *client,
                             uint64_t request,
                             struct srpc_response *response);

/*
 Let a signal end a wait (`on`), as a host that runs its signal handlers
 between calls needs (Python's Ctrl-C, a profiler's timer): a wait a
 signal interrupts returns SRPC_STATUS_INTERRUPTED, the request still in
 flight. Off by default: interrupted system calls are retried.

 # Safety
 `client` is live.
 */
srpc_status srpc_client_set_interruptible(const struct srpc_client *client, bool on);

/*
 Ping a server silent for `ping_interval_ms` (0: the default, 10 000)
 while a request waits, and give up on one silent for `dead_after_ms`
 (0: never; the default is 30 000), pings unanswered: the request then
 fails with SRPC_STATUS_ERR_TIMEOUT saying the server is frozen or
 unreachable, and the connection is closed. A healthy server answers
 pings during the longest call. Not applied to a stock simplerpyc
 server, which cannot answer pings during a call, nor to a stream
 connection (srpc_client_connect_fd()), which has no pings: a server that
 dies closes the stream.

 # Safety
 `client` is live.
 */
srpc_status srpc_client_set_liveness(const struct srpc_client *client,
                                     uint64_t ping_interval_ms,
                                     uint64_t dead_after_ms);

/*
 Give up on request `request` (sent with srpc_client_send(), or
 interrupted): its answer is dropped when it comes and an object it
 returns is released, so the connection stays usable and nothing leaks.
 Does no I/O.

 # Safety
 `client` is live.
 */
srpc_status srpc_client_abandon(const struct srpc_client *client, uint64_t request);

/*
 Take the oldest error of a pipelined call that no wait has reported yet,
 so that no error is lost: raise it at your next wait. Returns
 SRPC_STATUS_OK (writing nothing) when there is none; otherwise returns
 SRPC_STATUS_ERR_REMOTE with the error in srpc_last_error_type() and
 friends, and writes the failed request's id to `*request_out` (as
 srpc_client_request() writes its response on SRPC_STATUS_ERR_REMOTE).

 # Safety
 `client` is live; `request_out` is valid.
 */
srpc_status srpc_client_take_failure(const struct srpc_client *client, uint64_t *request_out);

/*
 The largest message this client sends or accepts, in bytes: a request
 over it is refused before it is built (SRPC_STATUS_ERR_INVALID_ARGUMENT,
 naming its size and the limit), so a host with its own encoder can check
 first. 0 for a NULL client.

 # Safety
 `client` is NULL or live.
 */
uint64_t srpc_client_max_message_size(const struct srpc_client *client);

/*
 How many times this client waited for answers from the server: its round
 trips (for tests and benchmarks).

 # Safety
 `client` is NULL or live.
 */
uint64_t srpc_client_round_trips(const struct srpc_client *client);

/*
 How many objects this connection holds on the server, written to
 `*count_out`: the count the server session keeps, read with a `stats`
 request (one round trip). Objects released with srpc_client_release()
 before it are freed by this very request and no longer counted, so a
 host can check that it releases what it drops. Needs the SRPC_EXT_STATS
 extension (a simplerpc server accepts it by default); against a stock
 simplerpyc server, which has no such request, it sends nothing and
 returns SRPC_STATUS_ERR_INVALID_ARGUMENT. A signal that ends the wait
 (srpc_client_set_interruptible()) returns SRPC_STATUS_INTERRUPTED with
 the request given up: call it again.

 # Safety
 `client` is live; `count_out` is valid for writing.
 */
srpc_status srpc_client_live_objects(const struct srpc_client *client, uint64_t *count_out);

/*
 Send `call` and wait for its response. `args`, `kwargs` and `key` go into
 the request frame as they are (checked, copied once; the large array
 payloads of `args_parts`, `kwargs_parts` and `key_parts` written from
 where they lie, not copied); a value comes back in `response->value` as
 the response frame holds it (not re-encoded; see
 srpc_response). A remote exception returns SRPC_STATUS_ERR_REMOTE with
 the details in srpc_last_error_type() and friends, writes `*response`
 with kind SRPC_RESPONSE_KIND_ERROR, and the connection stays usable.

 # Safety
 `client` is live; `call` is a valid srpc_call; `response` is valid for
 writing an srpc_response.
 */
srpc_status srpc_client_request(const struct srpc_client *client,
                                const struct srpc_call *call,
                                struct srpc_response *response);

/*
 Import `module` (dotted names allowed); writes the module's object id.

 # Safety
 `client` is live; `module` valid; `obj_out` valid.
 */
srpc_status srpc_client_import(const struct srpc_client *client,
                               struct srpc_str module,
                               uint64_t *obj_out);

/*
 Attribute `attr` of object `obj` (or of what `path` names, with
 SRPC_NO_OBJECT); writes the attribute's object id.

 # Safety
 `client` is live; strings valid; `obj_out` valid.
 */
srpc_status srpc_client_getattr(const struct srpc_client *client,
                                uint64_t obj,
                                struct srpc_str path,
                                struct srpc_str attr,
                                uint64_t *obj_out);

/*
 Call object `obj` (or `path`) with msgpack `args` (an array, or empty for
 no arguments) and `kwargs` (a map, or empty for none); they go into the
 frame as they are. Writes the result's object id.

 # Safety
 `client` is live; strings and slices valid; `obj_out` valid.
 */
srpc_status srpc_client_call(const struct srpc_client *client,
                             uint64_t obj,
                             struct srpc_str path,
                             struct srpc_slice args,
                             struct srpc_slice kwargs,
                             uint64_t *obj_out);

/*
 `obj[key]` with a msgpack `key` (one value; it goes into the frame as it
 is); writes the item's object id.

 # Safety
 `client` is live; `key` valid; `obj_out` valid.
 */
srpc_status srpc_client_getitem(const struct srpc_client *client,
                                uint64_t obj,
                                struct srpc_slice key,
                                uint64_t *obj_out);

/*
 Evaluate `expr` on the server; writes the result's object id.

 # Safety
 `client` is live; `expr` valid; `obj_out` valid.
 */
srpc_status srpc_client_eval(const struct srpc_client *client,
                             struct srpc_str expr,
                             uint64_t *obj_out);

/*
 Execute `code` on the server.

 # Safety
 `client` is live; `code` valid.
 */
srpc_status srpc_client_execute(const struct srpc_client *client, struct srpc_str code);

/*
 Fetch the value of object `obj` as msgpack into `*value_out` (free it
 with srpc_buf_free()): the bytes as the response frame holds them, not
 decoded and encoded again, and not copied out of the frame (`data`
 points into it; the buffer keeps it alive).

 # Safety
 `client` is live; `value_out` valid.
 */
srpc_status srpc_client_materialize(const struct srpc_client *client,
                                    uint64_t obj,
                                    struct srpc_buf *value_out);

/*
 Release object `obj`: it is freed on the server with the next request
 (against a stock server, which cannot free objects, nothing happens).
 Never blocks on the network; safe to call from any thread, e.g. a finaliser.
 A success leaves this thread's last error as it was, so a finaliser that
 runs between a failed call and the reading of its details wipes nothing.

 # Safety
 `client` is live.
 */
srpc_status srpc_client_release(const struct srpc_client *client, uint64_t obj);

/*
 Limit how long each request waits for its answer, in milliseconds (0: no
 limit, the default). A request that runs out of time returns
 SRPC_STATUS_ERR_TIMEOUT and closes the connection (a late answer could not be
 paired any more).

 # Safety
 `client` is live.
 */
srpc_status srpc_client_set_timeout(const struct srpc_client *client, uint64_t timeout_ms);

/*
 The extension bits (SRPC_EXT_*) negotiated with the server: 0 for a stock
 server. With SRPC_EXT_TUPLE, values carry tuples as the marker map
 `{"__tuple__": [items...]}` both ways (see SRPC_EXT_TUPLE).

 # Safety
 `client` is NULL or live.
 */
uint32_t srpc_client_extensions(const struct srpc_client *client);

/*
 Close the connection (politely, waiting briefly for the server's answer)
 and free the client. NULL does nothing.

 # Safety
 `client` is NULL or from srpc_client_connect() or
 srpc_client_connect_fd() and not yet freed.
 */
void srpc_client_free(struct srpc_client *client);

/*
 The status of the last call on this thread that returns an srpc_status:
 SRPC_STATUS_OK if it succeeded (or none was made yet). Functions that
 cannot fail (they return no srpc_status) leave it as it is.
 */
srpc_status srpc_last_error_status(void);

/*
 A message describing the last call on this thread that returned an
 srpc_status, if it failed; NULL if it succeeded (a success clears the
 previous error) or none was made yet. For SRPC_STATUS_ERR_REMOTE: the
 remote exception's message, without its type. Borrowed: valid until the
 next srpc_ call on this thread. Do not free.
 */
const char *srpc_last_error_message(void);

/*
 For SRPC_STATUS_ERR_REMOTE: the remote exception's qualified type name
 ("builtins.ValueError"), else NULL. Borrowed like srpc_last_error_message().
 */
const char *srpc_last_error_type(void);

/*
 For SRPC_STATUS_ERR_REMOTE: the remote traceback text (possibly empty),
 else NULL. Borrowed like srpc_last_error_message().
 */
const char *srpc_last_error_traceback(void);

/*
 For SRPC_STATUS_ERR_REMOTE: the opaque error payload (the reference
 server's pickle of the exception; never unpickle it from an untrusted
 server). Writes its length to `*len` (0 when there is none) and returns a
 borrowed pointer valid like srpc_last_error_message(). `len` may be NULL.

 # Safety
 `len` is NULL or a valid pointer to a size_t.
 */
const uint8_t *srpc_last_error_payload(size_t *len);

/*
 A static description of a status ("invalid argument"; "unknown status"
 for a number that is no srpc_status). Never NULL; do not free.
 */
const char *srpc_status_str(srpc_status status);

/*
 The C name of a status ("SRPC_STATUS_ERR_INVALID_ARGUMENT"; "unknown
 status" for a number that is no srpc_status). Never NULL; do not free.
 */
const char *srpc_status_name(srpc_status status);

/*
 Keep input `which` of the running call (its `args`, `kwargs` or `key`)
 beyond the callback: `*out` gets an owned buffer over the very bytes
 `call->args` (`kwargs`, `key`) points to, and the request frame stays
 alive until srpc_buf_free(). So a host can make values over the frame in
 place (a numpy array over its data) rather than copy them out. The
 reader places a large request so that its first large bin starts on a
 64-byte boundary. An input the call does not have gives an empty buffer.

 # Safety
 `reply` is the pointer passed to the running callback; `out` is valid
 for writing an srpc_buf.
 */
srpc_status srpc_reply_keep_input(struct srpc_reply *reply, uint32_t which, struct srpc_buf *out);

/*
 The extension bits (SRPC_EXT_*) the running call's connection
 negotiated with its client: 0 for a stock simplerpyc client. With
 SRPC_EXT_TUPLE set, a tuple in the call's `args`, `kwargs` and `key`
 travels as the marker map `{"__tuple__": [items...]}` (one str key, its
 value an array), and a value answered with srpc_reply_value() may write
 tuples so (the client makes them tuples again); without it a `__tuple__`
 map is just a map, and tuples must be answered as plain arrays (the
 library passes a value's bytes on as they are). A connection's bits never
 change, so a host may ask once per session. A reply that is not the
 running callback's gives 0.

 # Safety
 `reply` is NULL or the pointer passed to the running callback.
 */
uint32_t srpc_reply_extensions(const struct srpc_reply *reply);

/*
 Answer with a handle: the executor now holds an object under `handle`.
 The client gets a new object id for it, even for a handle answered
 before (the release callback then runs once, when the last id goes). If
 the callback then returns a failure status, the handle is released at once
 (unless an id of the client still names it: then when the last one goes).

 # Safety
 `reply` is the pointer passed to the running callback.
 */
srpc_status srpc_reply_handle(struct srpc_reply *reply, uint64_t handle);

/*
 Answer with a value, given as msgpack. The bytes are checked here, once,
 and copied once, into the buffer that becomes the response frame (they
 reach the client byte for byte, never decoded and encoded again). Bytes
 that are not exactly one msgpack value return
 SRPC_STATUS_ERR_INVALID_ARGUMENT, and unless the callback then answers
 otherwise, the client gets a `simplerpc.ExecutorError` saying that the
 executor answered invalid msgpack.

 # Safety
 `reply` is the pointer passed to the running callback; `data` is NULL with
 `len` 0 or points to `len` readable bytes.
 */
srpc_status srpc_reply_value(struct srpc_reply *reply, const uint8_t *data, size_t len);

/*
 As srpc_reply_value(), for a value given in `n` parts that together make
 the msgpack (a header, an array's own memory, the rest): each part is
 copied once, straight into the response frame, so a host need not join
 them into one buffer first.

 # Safety
 `reply` is the pointer passed to the running callback; `parts` is NULL
 with `n` 0 or points to `n` srpc_slice, each valid for its length.
 */
srpc_status srpc_reply_value_parts(struct srpc_reply *reply,
                                   const struct srpc_slice *parts,
                                   size_t n);

/*
 As srpc_reply_value_parts(), but parts of 64 KiB and up are not copied:
 the library reads them where they lie, as it writes the response frame
 (an array's memory goes to the socket without a copy, and the server
 needs no frame-sized buffer of its own). Smaller parts are copied during
 this call. The lent memory must stay valid and unchanged until the
 library calls `release(ctx)`, which it does exactly once, from any
 thread, whatever the outcome (also when this call fails); `release` may
 be NULL when the memory outlives the library's use anyway.

 # Safety
 `reply` is the pointer passed to the running callback; `parts` is NULL
 with `n` 0 or points to `n` srpc_slice, each valid for its length; the
 parts of 64 KiB and up stay valid and unchanged until `release(ctx)` is
 called, and `release` may be called from any thread.
 */
srpc_status srpc_reply_value_lent(struct srpc_reply *reply,
                                  const struct srpc_slice *parts,
                                  size_t n,
                                  srpc_lent_release_fn release,
                                  void *ctx);

/*
 Answer with an error: the client sees a remote exception of type
 `exception_type` ("builtins.ValueError"), with `message`, `traceback` and an
 optional opaque `payload` (all copied).

 # Safety
 `reply` is the pointer passed to the running callback; each srpc_str and
 srpc_slice is NULL with length 0 or valid for its length.
 */
srpc_status srpc_reply_error(struct srpc_reply *reply,
                             struct srpc_str exception_type,
                             struct srpc_str message,
                             struct srpc_str traceback,
                             struct srpc_slice payload);

/*
 Send log records up to `max_level` (SRPC_LOG_LEVEL_OFF turns logging off)
 to `callback`, or stop sending them with a NULL callback. Setting a
 new callback replaces the old one; once this returns, the old one is no
 longer called. If the process already has another Rust logger, records go
 there instead and this does nothing. Calling it from inside the callback
 does nothing either.

 # Safety
 `callback` and `userdata` must stay valid, and usable from any thread,
 until they are replaced or removed.
 */
void srpc_set_log_callback(srpc_log_fn callback, void *userdata, srpc_log_level max_level);

/*
 A new, empty writer. Never NULL; free with srpc_mp_writer_free().
 */
struct srpc_mp_writer *srpc_mp_writer_new(void);

/*
 Free a writer and what it holds. NULL does nothing.

 # Safety
 `w` is NULL or from srpc_mp_writer_new() and not yet freed.
 */
void srpc_mp_writer_free(struct srpc_mp_writer *w);

/*
 Move what was written into `*out` (free it with srpc_buf_free()) and
 empty the writer for reuse. If a write failed (see the srpc_mp_write_*
 functions), returns SRPC_STATUS_ERR_INVALID_ARGUMENT naming the first
 failure, writes nothing and empties the writer all the same.

 # Safety
 `w` is a live writer; `out` is valid for writing an srpc_buf.
 */
srpc_status srpc_mp_writer_finish(struct srpc_mp_writer *w, struct srpc_buf *out);

/*
 Empty the writer for reuse, dropping what was written and a failed
 write's error. NULL does nothing.

 # Safety
 `w` is NULL or a live writer.
 */
void srpc_mp_writer_clear(struct srpc_mp_writer *w);

/*
 The bytes written so far, borrowed: valid until the next write,
 srpc_mp_writer_finish() or srpc_mp_writer_free(). Handy as a call's
 `args` without taking a buffer. Empty for NULL. Does not report a
 failed write (srpc_mp_writer_finish() does).

 # Safety
 `w` is NULL or a live writer.
 */
struct srpc_slice srpc_mp_writer_data(const struct srpc_mp_writer *w);

/*
 Write nil (None). NULL `w` does nothing, here and in every srpc_mp_write_*.

 # Safety
 `w` is NULL or a live writer.
 */
void srpc_mp_write_nil(struct srpc_mp_writer *w);

/*
 Write a bool.

 # Safety
 `w` is NULL or a live writer.
 */
void srpc_mp_write_bool(struct srpc_mp_writer *w, bool v);

/*
 Write a signed integer, in the smallest form.

 # Safety
 `w` is NULL or a live writer.
 */
void srpc_mp_write_int(struct srpc_mp_writer *w, int64_t v);

/*
 Write an unsigned integer, in the smallest form.

 # Safety
 `w` is NULL or a live writer.
 */
void srpc_mp_write_uint(struct srpc_mp_writer *w, uint64_t v);

/*
 Write a float64 (a Python float).

 # Safety
 `w` is NULL or a live writer.
 */
void srpc_mp_write_double(struct srpc_mp_writer *w, double v);

/*
 Write a UTF-8 string given with its length (a Python str).

 # Safety
 `w` is NULL or a live writer; `s` is valid for its length.
 */
void srpc_mp_write_str(struct srpc_mp_writer *w, struct srpc_str s);

/*
 Write a NUL-terminated UTF-8 string (a Python str).

 # Safety
 `w` is NULL or a live writer; `s` is NULL (written as nil) or NUL-terminated.
 */
void srpc_mp_write_cstr(struct srpc_mp_writer *w, const char *s);

/*
 Write bytes as a bin (a Python bytes).

 # Safety
 `w` is NULL or a live writer; `b` is valid for its length.
 */
void srpc_mp_write_bin(struct srpc_mp_writer *w, struct srpc_slice b);

/*
 Write an array header: the next `n` values written are its items.

 # Safety
 `w` is NULL or a live writer.
 */
void srpc_mp_write_array(struct srpc_mp_writer *w, uint32_t n);

/*
 Write a map header: the next `2 * n` values written are its keys and
 values, alternating.

 # Safety
 `w` is NULL or a live writer.
 */
void srpc_mp_write_map(struct srpc_mp_writer *w, uint32_t n);

/*
 Write bytes that are already msgpack (one or more whole values), as
 they are: a value read from a response, for instance.

 # Safety
 `w` is NULL or a live writer; `b` is valid for its length.
 */
void srpc_mp_write_raw(struct srpc_mp_writer *w, struct srpc_slice b);

/*
 Write a reference to the object `obj` of this client (an id from a
 response), as an argument stands for a proxy:
 `{"__rpc_proxy__": true, "obj_id": obj}`. The server passes its executor
 the object itself.

 # Safety
 `w` is NULL or a live writer.
 */
void srpc_mp_write_proxy(struct srpc_mp_writer *w, uint64_t obj);

/*
 The item size in bytes of a numpy type string (`"<f8"` gives 8), or 0
 for one this library does not carry (structured or object dtypes).

 # Safety
 `dtype` is valid for its length.
 */
size_t srpc_ndarray_itemsize(struct srpc_str dtype);

/*
 Encode `a` as one msgpack value (`{b"nd": true, b"type": dtype, b"kind":
 b"", b"shape": [...], b"data": bin}`, as numpy's msgpack-numpy writes
 it; a 0-dimensional array is a 0-d numpy array, not a scalar) into
 `*out` (free with srpc_buf_free()). A dtype this library does not carry,
 or data whose length does not match the shape, is
 SRPC_STATUS_ERR_INVALID_ARGUMENT.

 # Safety
 `a` points to an srpc_ndarray whose slices are valid; `out` is valid
 for writing an srpc_buf.
 */
srpc_status srpc_ndarray_encode(const struct srpc_ndarray *a, struct srpc_buf *out);

/*
 As srpc_ndarray_encode(), but `*out` gets everything except the data's
 own bytes, which follow it: pass `{header, a->data}` as two parts
 (srpc_call.args_parts, kwargs_parts or key_parts, or
 srpc_reply_value_parts()) so a large array is copied once, straight into
 the frame.

 # Safety
 As srpc_ndarray_encode().
 */
srpc_status srpc_ndarray_header(const struct srpc_ndarray *a, struct srpc_buf *out);

/*
 Write `a` as srpc_ndarray_encode() encodes it. An invalid array is kept
 as the writer's error (reported by srpc_mp_writer_finish()).

 # Safety
 `w` is NULL or a live writer; `a` as for srpc_ndarray_encode().
 */
void srpc_mp_write_ndarray(struct srpc_mp_writer *w, const struct srpc_ndarray *a);

/*
 A reader at the start of `len` bytes at `data`.
 */
struct srpc_mp_reader srpc_mp_reader_new(const uint8_t *data, size_t len);

/*
 Read one item into `*out` and move past it. A string, bin or ext is read
 whole (`out->bytes` points into the reader's bytes); an array or map is
 only its header: its `count` items (or pairs) are the next items read.
 At the end of the bytes, or at bytes that are no msgpack, returns
 SRPC_STATUS_ERR_INVALID_ARGUMENT naming the offset, and does not move.

 # Safety
 `r` points to a reader whose bytes are valid; `out` is valid for
 writing an srpc_mp_item.
 */
srpc_status srpc_mp_read(struct srpc_mp_reader *r, struct srpc_mp_item *out);

/*
 Move past one whole value (an array or map with all it holds).
 Invalid or truncated msgpack returns SRPC_STATUS_ERR_INVALID_ARGUMENT and
 does not move.

 # Safety
 `r` points to a reader whose bytes are valid.
 */
srpc_status srpc_mp_skip(struct srpc_mp_reader *r);

/*
 Whether `item` is a string or bin equal to the NUL-terminated `s` (map
 keys of msgpack-numpy arrays are bins, the protocol's are strings).

 # Safety
 `item` is NULL or a valid item whose bytes are alive; `s` is NULL or
 NUL-terminated.
 */
bool srpc_mp_item_is(const struct srpc_mp_item *item, const char *s);

/*
 Read one whole value as a numpy array into `*out` (its `dtype` and
 `data` point into the reader's bytes) and move past it. A numpy scalar
 (`b"nd": false`) gives `ndim` 0. A value that is no such array, or one
 of a dtype this library does not carry (structured, object), returns
 SRPC_STATUS_ERR_INVALID_ARGUMENT saying why, and does not move.

 # Safety
 `r` points to a reader whose bytes are valid; `out` is valid for
 writing an srpc_ndarray.
 */
srpc_status srpc_mp_read_ndarray(struct srpc_mp_reader *r, struct srpc_ndarray *out);

/*
 Decode `value`, exactly one msgpack value (a response's `value`), as a
 numpy array, as srpc_mp_read_ndarray() does: `out->dtype` and
 `out->data` point into `value`. Bytes after the value are
 SRPC_STATUS_ERR_INVALID_ARGUMENT.

 # Safety
 `value` is valid for its length; `out` is valid for writing an srpc_ndarray.
 */
srpc_status srpc_ndarray_decode(struct srpc_slice value, struct srpc_ndarray *out);

/*
 Bind and start a server on its own threads; one executor session is
 opened per connected client. `executor` is copied; its userdata is freed
 (by `free_userdata`) in srpc_server_free(), or before this returns when
 it fails (any failure but a NULL `executor` or `executor->call`: the
 host must not free it then). Returns SRPC_STATUS_ERR_IO when the
 address cannot be bound, SRPC_STATUS_ERR_INVALID_ARGUMENT for a limit
 that cannot work (a stack under 64 KiB). Stop with srpc_server_stop(), free with srpc_server_free().

 # Safety
 `config` and `executor` point to valid structs; `server_out` is valid.
 */
srpc_status srpc_server_start(const struct srpc_server_config *config,
                              const struct srpc_executor *executor,
                              struct srpc_server **server_out);

/*
 The port the server listens on (0 for NULL).

 # Safety
 `server` is NULL or live.
 */
uint16_t srpc_server_port(const struct srpc_server *server);

/*
 The token clients must present: NUL-terminated, borrowed, valid until
 srpc_server_free(). NULL for a NULL server.

 # Safety
 `server` is NULL or live.
 */
const char *srpc_server_token(const struct srpc_server *server);

/*
 Stop the server: stop accepting, end every session (releasing its
 handles and calling `close`), and return once all of them have ended.
 Stopping a stopped server does nothing. Must not be called from an
 executor callback.

 # Safety
 `server` is live.
 */
srpc_status srpc_server_stop(struct srpc_server *server);

/*
 Stop the server if it runs, then free it and the executor's userdata.
 NULL does nothing.

 # Safety
 `server` is NULL or from srpc_server_start() and not yet freed.
 */
void srpc_server_free(struct srpc_server *server);

/*
 Create a client session speaking the extension bits `extensions`
 (SRPC_EXT_*; both ends must agree). Free with srpc_client_session_free().

 # Safety
 `session_out` is a valid pointer.
 */
srpc_status srpc_client_session_new(uint32_t extensions_bits,
                                    struct srpc_client_session **session_out);

/*
 Free a client session. NULL does nothing.

 # Safety
 `session` is NULL or from srpc_client_session_new() and not yet freed.
 */
void srpc_client_session_free(struct srpc_client_session *session);

/*
 Build the frame for `call`. Writes the frame (free with srpc_buf_free())
 and the request's id. `args`, `kwargs` and `key` go into the frame as they
 are (checked once, copied once, never re-encoded): the frame is one
 buffer the host owns, so `args_parts`, `kwargs_parts` and `key_parts`
 are copied in too (a connection, srpc_client_request(), writes large
 array payloads from where they lie instead). Requests may be
 pipelined: send several, then feed their responses in order to
 srpc_client_session_receive() (or srpc_client_session_store(), then take
 this request's answer with srpc_client_session_take()).

 # Safety
 `session` is a live client session; `call` a valid srpc_call; the out-pointers valid.
 */
srpc_status srpc_client_session_send(struct srpc_client_session *session,
                                     const struct srpc_call *call,
                                     struct srpc_buf *frame_out,
                                     uint64_t *request_id_out);

/*
 Queue object `obj` for release; it rides on the next request frame
 (with SRPC_EXT_RELEASE; otherwise nothing happens). `obj` may be a
 promise (srpc_client_session_send_pipelined()): the object its request
 returned is released, with the next request if its answer has been read,
 else with the first request after the answer is read.

 A success leaves this thread's last error as it was (see srpc_client_release()).

 # Safety
 `session` is a live client session.
 */
srpc_status srpc_client_session_release(struct srpc_client_session *session, uint64_t obj);

/*
 Take one response frame (in request order). On success writes `*response`
 (free its `value` with srpc_buf_free()): a value is handed on as the frame
 holds it, byte for byte, in the library's one copy of `frame` (it is not
 decoded and encoded again). A remote exception returns
 SRPC_STATUS_ERR_REMOTE with the details in srpc_last_error_type() and
 friends, and writes `*response` too, with kind SRPC_RESPONSE_KIND_ERROR
 and the `request_id` that failed.

 Every answer is handed out here, a request's sent with
 srpc_client_session_send_pipelined() too (its object is also noted for its
 promise; release the promise, not that object). So an error handed out
 here is reported: it is not kept for srpc_client_session_take_failure().
 Hosts that pipeline usually read frames with srpc_client_session_store()
 instead, and take only the answers they wait for.

 # Safety
 `session` is a live client session; `frame` points to `len` bytes;
 `response` is valid for writing an srpc_response.
 */
srpc_status srpc_client_session_receive(struct srpc_client_session *session,
                                        const uint8_t *frame,
                                        size_t len,
                                        struct srpc_response *response);

/*
 Whether the session pipelines on promises: it was made with both
 SRPC_EXT_PROMISE and SRPC_EXT_REQUEST_IDS (SRPC_EXT_ALL has both). The
 server session at the other end must speak them too. NULL gives false.

 # Safety
 `session` is NULL or a live client session.
 */
bool srpc_client_session_promises(const struct srpc_client_session *session);

/*
 Build the frame for `call` to be sent without waiting for its answer, and
 write the frame (free with srpc_buf_free()) and the *promise* of the
 object the call will return. A promise is the request's id with
 SRPC_PROMISE_BIT set: use it as `obj`, or inside `args`/`kwargs`/`key` as
 `{"__rpc_promise__": n}` with `n = promise & ~SRPC_PROMISE_BIT`, in later
 calls of this session, before its answer has come; release it with
 srpc_client_session_release() like any object id (the object is freed on
 the server once its answer has come). So a chain such as getattr, call,
 materialize is one round trip: write every frame, then read the answers.

 Read the answers with srpc_client_session_store(): a pipelined request's
 answer is not taken, only noted (its object, for the promise; or its
 error). If the call fails, the calls built on it are not run and fail
 with its error (its own exception type): the answer you wait for reports
 it, and an error no waited-for answer reports is kept for
 srpc_client_session_take_failure(). For getattr, call, getitem and eval
 (kinds that return an object). Needs srpc_client_session_promises()
 (else SRPC_STATUS_ERR_PROTOCOL, and nothing is built). `args`, `kwargs`
 and `key` are checked and copied as by srpc_client_session_send().

 # Safety
 `session` is a live client session; `call` a valid srpc_call; the
 out-pointers valid.
 */
srpc_status srpc_client_session_send_pipelined(struct srpc_client_session *session,
                                               const struct srpc_call *call,
                                               struct srpc_buf *frame_out,
                                               uint64_t *promise_out);

/*
 Read one response frame (in request order) into the session, and write
 the id of the request it answers to `*request_id_out`. The answer of a
 request sent with srpc_client_session_send() is kept until
 srpc_client_session_take(); a pipelined request's answer is noted instead
 (its object for its promise, or its error for
 srpc_client_session_take_failure()). A frame that cannot be read still
 answers its request (the server answers each request once), so later
 frames stay paired: taking that answer reports what was wrong. Fails
 (SRPC_STATUS_ERR_PROTOCOL, nothing read) only for a frame that answers
 no request in flight. The library keeps one copy of `frame`; the
 caller's buffer is not needed after the call.

 # Safety
 `session` is a live client session; `frame` points to `len` bytes;
 `request_id_out` is valid.
 */
srpc_status srpc_client_session_store(struct srpc_client_session *session,
                                      const uint8_t *frame,
                                      size_t len,
                                      uint64_t *request_id_out);

/*
 Whether request `request_id` needs no more frames: its answer has been
 read by srpc_client_session_store() and not yet taken, or the request is
 not in flight at all (answered and taken, a pipelined request already
 read, or never sent). Read frames until this is true, then call
 srpc_client_session_take(). NULL gives false.

 # Safety
 `session` is NULL or a live client session.
 */
bool srpc_client_session_is_answered(const struct srpc_client_session *session,
                                     uint64_t request_id);

/*
 Take the answer of request `request_id` (sent with
 srpc_client_session_send()) once srpc_client_session_store() has read it,
 and write it to `*response` as srpc_client_session_receive() does (its
 `request_id` set; free its `value` with srpc_buf_free()). A remote
 exception returns SRPC_STATUS_ERR_REMOTE and writes `*response` with kind
 SRPC_RESPONSE_KIND_ERROR; when the request was built on a pipelined
 request that failed, that is the failed request's error, with its own
 exception type, and it is reported now (srpc_client_session_take_failure()
 will not return it again). A frame that could not be read returns
 SRPC_STATUS_ERR_PROTOCOL. Each answer is taken once: with no answer to
 take (not read yet, taken already, pipelined, or never sent) this returns
 SRPC_STATUS_ERR_STATE and writes nothing.

 # Safety
 `session` is a live client session; `response` is valid for writing an
 srpc_response.
 */
srpc_status srpc_client_session_take(struct srpc_client_session *session,
                                     uint64_t request_id,
                                     struct srpc_response *response);

/*
 Take the oldest error of a pipelined request (srpc_client_session_send_pipelined())
 that no answer has reported yet, so that no error is lost: raise it at
 your next wait. Returns SRPC_STATUS_OK (writing nothing) when there is
 none; otherwise returns SRPC_STATUS_ERR_REMOTE with the error in
 srpc_last_error_type() and friends, and writes the failed request's id
 to `*request_id_out` (as srpc_client_session_take() writes its response
 on SRPC_STATUS_ERR_REMOTE). Each error is returned once.

 # Safety
 `session` is a live client session; `request_id_out` is valid.
 */
srpc_status srpc_client_session_take_failure(struct srpc_client_session *session,
                                             uint64_t *request_id_out);

/*
 Create a server session over `executor` (copied; its `open` runs now)
 speaking the extension bits `extensions`. Free with srpc_server_session_free(),
 which releases every handle, closes the session and frees the userdata.
 A failure (the `open` callback's, a NULL `session_out`) frees the
 userdata before it returns, unless `executor` or `executor->call` is
 NULL: the host must not free it then.

 # Safety
 `executor` points to a valid srpc_executor; `session_out` is valid.
 */
srpc_status srpc_server_session_new(const struct srpc_executor *executor,
                                    uint32_t extensions_bits,
                                    struct srpc_server_session **session_out);

/*
 Handle one request frame; writes exactly one response frame (free with
 srpc_buf_free()). A malformed frame gets an error response, not a failure.

 # Safety
 `session` is live; `frame` points to `len` bytes; `response_out` is valid.
 */
srpc_status srpc_server_session_handle(struct srpc_server_session *session,
                                       const uint8_t *frame,
                                       size_t len,
                                       struct srpc_buf *response_out);

/*
 Set the most objects the session's client may hold at once (default
 1,000,000; 0 is refused with SRPC_STATUS_ERR_INVALID_ARGUMENT). A request
 that would create one more is answered with an error of type
 "simplerpc.ObjectLimitError" until the client releases some.

 # Safety
 `session` is live.
 */
srpc_status srpc_server_session_set_max_objects(struct srpc_server_session *session,
                                                uint64_t max_objects);

/*
 How many objects the session's client holds.

 # Safety
 `session` is NULL or live.
 */
size_t srpc_server_session_live_objects(const struct srpc_server_session *session);

/*
 Free a server session: release all its handles and close it. NULL does nothing.

 # Safety
 `session` is NULL or from srpc_server_session_new() and not yet freed.
 */
void srpc_server_session_free(struct srpc_server_session *session);

/*
 Serve one client over the connected socket `fd` on the calling thread,
 with one session of `executor`, until the client closes its end: then
 SRPC_STATUS_OK. A socket that fails, or a peer that breaks the
 protocol (a wrong hello, an oversized message), returns
 SRPC_STATUS_ERR_IO or SRPC_STATUS_ERR_PROTOCOL with the reason in
 srpc_last_error_message(). The executor's callbacks run on the calling
 thread; an open callback that fails makes every call answer with its
 error (as srpc_server_start() does); the session is closed, and the userdata freed (by
 `free_userdata`), before this returns. `config` may be NULL (defaults).

 `fd` is taken over and closed on return, in every case. To end the
 service early from another thread, `shutdown(fd, SHUT_RDWR)`: it
 returns once the call running then (if any) is done.

 # Safety
 `config` is NULL or valid; `executor` points to a valid struct; `fd` is
 an open descriptor the caller owns and does not use or close afterwards.
 */
srpc_status srpc_server_serve_fd(const struct srpc_stream_config *config,
                                 const struct srpc_executor *executor,
                                 int fd);

/*
 Connect over the connected socket `fd` whose other end a stream server
 serves (srpc_server_serve_fd(), `python -m simplerpc.server --fd N`):
 say hello, offering `config->extensions` (default SRPC_EXT_DEFAULT), and
 read the server's answer (srpc_client_extensions() tells what it accepted).
 `config` may be NULL (defaults, no time limit; `max_objects` is not used). Every
 srpc_client_* function works on the client; srpc_client_set_liveness()
 does nothing (a server that dies closes the stream). A server that does
 not answer the hello as one (a wrong descriptor) returns
 SRPC_STATUS_ERR_PROTOCOL naming what it sent. Free with srpc_client_free().

 `fd` is taken over in every case (closed on failure, and by
 srpc_client_free()).

 # Safety
 `config` is NULL or valid; `fd` is an open descriptor the caller owns and
 does not use or close afterwards; `client_out` is valid.
 */
srpc_status srpc_client_connect_fd(const struct srpc_stream_config *config,
                                   int fd,
                                   struct srpc_client **client_out);

/*
 The path trail of an object, as every simplerpc client writes it
 (`"numpy.zeros()"`, `"frames[0, ::2]"`). Clients send a proxy's trail
 with each getattr and call (the reference protocol needs it); build it
 here rather than by hand so all clients agree. `kind` is an
 srpc_trail_kind; unused inputs may be empty. On success `*out` holds the
 UTF-8 trail (free with srpc_buf_free()).

 A tuple key has no wire form of its own: build it on the server by
 calling the builtin named by srpc_trail_tuple_builtin() with the items as
 one list, and index with a reference to the result.

 # Safety
 Each srpc_str/srpc_slice is NULL with length 0 or valid for its length;
 `out` is NULL or points to writable memory for an srpc_buf.
 */
srpc_status srpc_trail(srpc_trail_kind kind,
                       struct srpc_str parent,
                       struct srpc_str a,
                       struct srpc_slice key,
                       struct srpc_buf *out);

/*
 As srpc_trail(), with the key in `key_len` parts that make it when
 joined, cut as srpc_call.key_parts is: a part of at least 64 KiB that
 is exactly a bin's payload (an array's data) is not read at all (a
 trail never shows a large bin's bytes, `x[<ndarray>]`), so the trail of
 a large array key costs no copy of it. Other parts are copied once.

 # Safety
 As srpc_trail(); `key` is NULL with `key_len` 0 or points to `key_len`
 srpc_slices, each NULL with length 0 or valid for its length.
 */
srpc_status srpc_trail_parts(srpc_trail_kind kind,
                             struct srpc_str parent,
                             struct srpc_str a,
                             const struct srpc_slice *key,
                             size_t key_len,
                             struct srpc_buf *out);

/*
 The name of the builtin a tuple key is built with (`"tuple"`), static
 and NUL-terminated.
 */
const char *srpc_trail_tuple_builtin(void);

/*
 Free a buffer the library handed out, and reset it to empty. Freeing an
 empty buffer, or passing NULL, does nothing. The bytes it pointed to may
 be gone at once (with the frame they were part of).

 # Safety
 `buf` is NULL or points to an srpc_buf filled by this library (or zeroed)
 and not yet freed.
 */
void srpc_buf_free(struct srpc_buf *buf);

/*
 Split msgpack `value` (one value, e.g. a response's `value` buffer) into
 its large bins and the rest. Each bin of at least `min` bytes is replaced
 in `*skeleton_out` by a fixext4 of type SRPC_SPLIT_BIN_EXT holding its
 index (big-endian uint32); `*bins_out` holds, for each, two uint64 in
 this machine's byte order: its payload's offset in `value` and its
 length. Copy each payload out of `value` while it lives, and decode the
 skeleton with an ext hook that returns the i-th payload. Free both
 buffers with srpc_buf_free(). Invalid msgpack returns
 SRPC_STATUS_ERR_INVALID_ARGUMENT.

 # Safety
 `value` is valid for its length; the out-pointers are valid for writing.
 */
srpc_status srpc_value_split(struct srpc_slice value,
                             size_t min,
                             struct srpc_buf *skeleton_out,
                             struct srpc_buf *bins_out);

/*
 The version of the loaded libsimplerpc ("0.2.0"): static, NUL-terminated,
 never NULL; do not free. Compare it with SRPC_VERSION_MAJOR and friends
 (the header's version) to catch a header and library that do not match.
 The shared library's SONAME is `libsimplerpc.so.<major>`.
 */
const char *srpc_version(void);

/*
 The major version of the library, as a number.
 */
uint32_t srpc_version_major(void);

/*
 The minor version of the library, as a number.
 */
uint32_t srpc_version_minor(void);

/*
 The patch version of the library, as a number.
 */
uint32_t srpc_version_patch(void);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* SIMPLERPC_H */
