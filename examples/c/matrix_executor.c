#include "matrix_executor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


enum kind { K_FREE, K_MODULE, K_FUNC, K_MATRIX };
enum func { F_ZEROS, F_EYE, F_MATMUL, F_FULL };
static const char *FUNC_NAMES[] = {"zeros", "eye", "matmul", "full"};

typedef struct {
    enum kind kind;
    enum func func;
    int ndim;             /* 1 or 2 */
    uint64_t rows, cols;  /* ndim 1: rows == 1 */
    double *data;
} object;

typedef struct {
    object *objs;
    size_t len, cap;
} session;

static srpc_str S(const char *s) {
    srpc_str r = {s, s ? strlen(s) : 0};
    return r;
}

static srpc_status fail(srpc_reply *reply, const char *type, const char *msg) {
    srpc_slice none = {NULL, 0};
    srpc_reply_error(reply, S(type), S(msg), S(""), none);
    return SRPC_STATUS_OK;
}

static uint64_t store(session *s, object o) {
    if (s->len == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->objs = (object *)realloc(s->objs, s->cap * sizeof(object));
    }
    s->objs[s->len] = o;
    return s->len++;
}

static object *lookup(session *s, uint64_t h) {
    if (h >= s->len || s->objs[h].kind == K_FREE) return NULL;
    return &s->objs[h];
}

static object new_matrix(uint64_t rows, uint64_t cols) {
    object o;
    memset(&o, 0, sizeof o);
    o.kind = K_MATRIX;
    o.ndim = 2;
    o.rows = rows;
    o.cols = cols;
    o.data = (double *)calloc((rows * cols) > 0 ? rows * cols : 1, sizeof(double));
    return o;
}

/* One argument: a number, a reference to a matrix (a proxy or a promise), or
 * a float64 ndarray. */
typedef struct {
    int is_num;
    double num;
    object *m;      /* from a reference */
    object owned;   /* from an ndarray (freed by the caller) */
} arg;

/* Read the next argument. A reference to an object is one of the client's
 * two marker maps: a proxy {"__rpc_proxy__": true, "obj_id": ID}, where ID is
 * the client's object id, or a promise {"__rpc_promise__": N} (the promise
 * extension), where N is the id of an earlier request whose result it names.
 * Neither number is a handle of ours: the handle of the i-th reference of
 * either kind, in byte order, is c->refs[i] (*next_ref counts the references
 * read so far). */
static const char *read_arg(session *s, srpc_mp_reader *r, const srpc_call *c, size_t *next_ref, arg *a) {
    memset(a, 0, sizeof *a);
    size_t start = r->pos;
    srpc_mp_item o;
    if (srpc_mp_read(r, &o)) return "malformed argument";
    if (o.type == SRPC_MP_TYPE_INT || o.type == SRPC_MP_TYPE_UINT || o.type == SRPC_MP_TYPE_FLOAT) {
        a->is_num = 1;
        a->num = o.type == SRPC_MP_TYPE_FLOAT ? o.f : o.type == SRPC_MP_TYPE_UINT ? (double)o.u : (double)o.i;
        return NULL;
    }
    if (o.type != SRPC_MP_TYPE_MAP) return "arguments must be numbers or matrices";
    /* A reference has a marker key; anything else must be an array. */
    int is_ref = 0;
    for (uint32_t i = 0; i < o.count; i++) {
        srpc_mp_item k;
        if (srpc_mp_read(r, &k) || srpc_mp_skip(r)) return "malformed argument";
        if (srpc_mp_item_is(&k, "__rpc_proxy__") || srpc_mp_item_is(&k, "__rpc_promise__")) is_ref = 1;
    }
    if (is_ref) {
        if (*next_ref >= c->refs_len) return "a reference without a handle";
        a->m = lookup(s, c->refs[(*next_ref)++]);
        return a->m && a->m->kind == K_MATRIX ? NULL : "argument names no matrix";
    }
    r->pos = start;
    srpc_ndarray nd;
    if (srpc_mp_read_ndarray(r, &nd)) return "arguments must be numbers, matrices or numpy arrays";
    if (nd.dtype.len != 3 || memcmp(nd.dtype.ptr, "<f8", 3) != 0 || nd.ndim < 1 || nd.ndim > 2)
        return "arrays must be 1-d or 2-d float64";
    uint64_t rows = nd.ndim == 2 ? nd.shape[0] : 1, cols = nd.ndim == 2 ? nd.shape[1] : nd.shape[0];
    a->owned = new_matrix(rows, cols);
    a->owned.ndim = (int)nd.ndim;
    memcpy(a->owned.data, nd.data.ptr, nd.data.len); /* decoding checked the length */
    a->m = &a->owned;
    return NULL;
}

static srpc_status do_call(session *s, enum func f, const srpc_call *c, srpc_reply *reply) {
    srpc_mp_reader r = srpc_mp_reader_new(c->args.ptr, c->args.len);
    srpc_mp_item list;
    if (srpc_mp_read(&r, &list) || list.type != SRPC_MP_TYPE_ARRAY)
        return fail(reply, "builtins.TypeError", "args must be a list");
    arg a[3];
    uint32_t n = list.count;
    static const uint32_t want[] = {2, 1, 2, 3};
    if (n != want[f]) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s() takes %u arguments (%u given)", FUNC_NAMES[f], want[f], n);
        return fail(reply, "builtins.TypeError", msg);
    }
    const char *err = NULL;
    uint32_t got = 0;
    size_t next_ref = 0;
    for (; got < n && !err; got++) err = read_arg(s, &r, c, &next_ref, &a[got]);
    object out;
    memset(&out, 0, sizeof out);
    if (!err) {
        if (f == F_MATMUL) {
            if (a[0].is_num || a[1].is_num) err = "matmul() takes two matrices";
            else if (a[0].m->cols != a[1].m->rows) err = "matmul: shapes do not align";
            else {
                object *x = a[0].m, *y = a[1].m;
                out = new_matrix(x->rows, y->cols);
                for (uint64_t i = 0; i < x->rows; i++)
                    for (uint64_t k = 0; k < x->cols; k++)
                        for (uint64_t j = 0; j < y->cols; j++)
                            out.data[i * y->cols + j] += x->data[i * x->cols + k] * y->data[k * y->cols + j];
            }
        } else {
            for (uint32_t i = 0; i < n && !err; i++)
                if (!a[i].is_num) err = "expected numbers";
            if (!err && (a[0].num < 0 || (f != F_EYE && a[1].num < 0) || a[0].num > 1e5 || (f != F_EYE && a[1].num > 1e5)))
                err = "dimensions must be between 0 and 100000";
            if (!err) {
                uint64_t rows = (uint64_t)a[0].num, cols = f == F_EYE ? rows : (uint64_t)a[1].num;
                out = new_matrix(rows, cols);
                for (uint64_t i = 0; i < rows * cols; i++) out.data[i] = f == F_FULL ? a[2].num : 0.0;
                if (f == F_EYE)
                    for (uint64_t i = 0; i < rows; i++) out.data[i * cols + i] = 1.0;
            }
        }
    }
    for (uint32_t i = 0; i < got; i++) free(a[i].owned.data);
    if (err) return fail(reply, "builtins.ValueError", err);
    return srpc_reply_handle(reply, store(s, out));
}

static const char *kind_name(enum kind k) {
    return k == K_MODULE ? "module" : k == K_FUNC ? "function" : "matrix";
}

static srpc_status on_call(void *userdata, void *sess, const srpc_call *c, srpc_reply *reply) {
    (void)userdata;
    session *s = (session *)sess;
    object *target = NULL;
    if (c->obj != SRPC_NO_OBJECT) {
        target = lookup(s, c->obj);
        if (!target) {
            char msg[64];
            snprintf(msg, sizeof msg, "no object under handle %llu", (unsigned long long)c->obj);
            return fail(reply, "builtins.KeyError", msg);
        }
    }
    char name[128] = "", path[128] = "";
    snprintf(name, sizeof name, "%.*s", (int)c->name.len, c->name.ptr ? c->name.ptr : "");
    snprintf(path, sizeof path, "%.*s", (int)c->path.len, c->path.ptr ? c->path.ptr : "");
    switch (c->kind) {
    case SRPC_CALL_KIND_IMPORT_MODULE: {
        if (strcmp(name, "matrix") != 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "No module named '%s'", name);
            return fail(reply, "builtins.ModuleNotFoundError", msg);
        }
        object o = {K_MODULE, F_ZEROS, 0, 0, 0, NULL};
        return srpc_reply_handle(reply, store(s, o));
    }
    case SRPC_CALL_KIND_GET_ATTR:
    case SRPC_CALL_KIND_CALL: {
        enum func f = F_ZEROS;
        const char *fname = c->kind == SRPC_CALL_KIND_GET_ATTR ? name : NULL;
        if (c->kind == SRPC_CALL_KIND_CALL && target && target->kind == K_FUNC) {
            f = target->func;
        } else {
            if (c->kind == SRPC_CALL_KIND_CALL) { /* by path: "matrix.zeros" */
                fname = strncmp(path, "matrix.", 7) == 0 ? path + 7 : "";
            } else if (target && target->kind != K_MODULE) {
                char msg[256];
                snprintf(msg, sizeof msg, "'%s' object has no attribute '%s'", kind_name(target->kind), name);
                return fail(reply, "builtins.AttributeError", msg);
            }
            int found = 0;
            for (int i = 0; i < 4; i++)
                if (strcmp(fname, FUNC_NAMES[i]) == 0) { f = (enum func)i; found = 1; }
            if (!found) {
                char msg[256];
                snprintf(msg, sizeof msg, "module 'matrix' has no attribute '%s'", fname);
                return fail(reply, "builtins.AttributeError", msg);
            }
            if (c->kind == SRPC_CALL_KIND_GET_ATTR) {
                object o = {K_FUNC, f, 0, 0, 0, NULL};
                return srpc_reply_handle(reply, store(s, o));
            }
        }
        return do_call(s, f, c, reply);
    }
    case SRPC_CALL_KIND_GET_ITEM: {
        srpc_mp_reader r = srpc_mp_reader_new(c->key.ptr, c->key.len);
        srpc_mp_item k;
        int is_int = srpc_mp_read(&r, &k) == SRPC_STATUS_OK &&
                     (k.type == SRPC_MP_TYPE_INT || (k.type == SRPC_MP_TYPE_UINT && k.u <= INT64_MAX));
        if (target->kind != K_MATRIX || target->ndim != 2 || !is_int)
            return fail(reply, "builtins.TypeError", "only rows of a matrix can be indexed (m[i])");
        int64_t i = k.i < 0 ? k.i + (int64_t)target->rows : k.i;
        if (i < 0 || (uint64_t)i >= target->rows) return fail(reply, "builtins.IndexError", "row index out of range");
        object row = new_matrix(1, target->cols);
        row.ndim = 1;
        memcpy(row.data, target->data + (uint64_t)i * target->cols, target->cols * sizeof(double));
        return srpc_reply_handle(reply, store(s, row));
    }
    case SRPC_CALL_KIND_MATERIALIZE: {
        if (target->kind != K_MATRIX) {
            char msg[128];
            snprintf(msg, sizeof msg, "a %s cannot be materialized", kind_name(target->kind));
            return fail(reply, "builtins.TypeError", msg);
        }
        srpc_ndarray nd;
        memset(&nd, 0, sizeof nd);
        nd.dtype = S("<f8");
        nd.ndim = (size_t)target->ndim;
        nd.shape[0] = target->ndim == 2 ? target->rows : target->cols;
        nd.shape[1] = target->cols;
        nd.data.ptr = (const uint8_t *)target->data;
        nd.data.len = target->rows * target->cols * sizeof(double);
        /* The header, then the matrix's own memory: copied once, into the frame. */
        srpc_buf head = {NULL, 0, NULL};
        srpc_status st = srpc_ndarray_header(&nd, &head);
        if (st != SRPC_STATUS_OK) return st;
        srpc_slice parts[2] = {{head.data, head.len}, nd.data};
        st = srpc_reply_value_parts(reply, parts, 2);
        srpc_buf_free(&head);
        return st;
    }
    case SRPC_CALL_KIND_GET_NAMESPACE: {
        uint8_t empty_map = 0x80;
        return srpc_reply_value(reply, &empty_map, 1);
    }
    default:
        return fail(reply, "builtins.NotImplementedError", "the matrix executor has no eval, execute, teleport or builtins");
    }
}

static srpc_status on_open(void *userdata, void **sess) {
    (void)userdata;
    *sess = calloc(1, sizeof(session));
    return *sess ? SRPC_STATUS_OK : SRPC_STATUS_ERR_IO;
}

static void on_release(void *userdata, void *sess, uint64_t h) {
    (void)userdata;
    object *o = lookup((session *)sess, h);
    if (o) {
        free(o->data);
        o->data = NULL;
        o->kind = K_FREE;
    }
}

static void on_close(void *userdata, void *sess) {
    session *s = (session *)sess;
    for (size_t i = 0; i < s->len; i++) on_release(userdata, s, i);
    free(s->objs);
    free(s);
}

srpc_executor matrix_executor(void) {
    srpc_executor e;
    memset(&e, 0, sizeof e);
    e.open = on_open;
    e.close = on_close;
    e.call = on_call;
    e.release = on_release;
    return e;
}
