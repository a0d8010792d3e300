/*
 * tier_rpc_json.c -- protobuf-c messages to and from JSON (see
 * tier_rpc_json.h for the mapping).
 *
 * Both directions walk the message descriptor field by field; a message
 * decoded from JSON is built in an rpc arena (one free at the end, however
 * the walk ended), packed, and the arena dropped.  jansson's allocations
 * during a parse are counted against a per-thread budget through its
 * allocator hooks, the only way to bound what a hostile text costs before
 * we ever see its values.
 */
#include "tier_rpc_json.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_rpc_int.h"
#include "tier_status.h"

#define MEMBER(type, m, off) ((type *)((uint8_t *)(m) + (off)))

/* ------------------------------------------------------------ parse budget */

static _Thread_local size_t *parse_budget; /* NULL: not parsing */
static _Thread_local bool parse_refused;   /* the budget said no */
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void *budget_malloc(size_t n)
{
    if (parse_budget != NULL) {
        if (n > *parse_budget) {
            parse_refused = true; /* jansson says "out of memory": we name the cap */
            return NULL;
        }
        *parse_budget -= n;
    }
    return malloc(n);
}

static void install_hooks(void)
{
    json_set_alloc_funcs(budget_malloc, free);
}

/* ------------------------------------------------------------ names */

/* Does key name field f, as written in the .proto or in lowerCamelCase? */
static bool key_matches(const char *key, const char *name)
{
    if (strcmp(key, name) == 0)
        return true;
    for (; *name != '\0'; name++, key++) {
        if (*name == '_' && name[1] != '\0') {
            name++;
            if (*key != (name[0] >= 'a' && name[0] <= 'z' ? name[0] - 'a' + 'A' : name[0]))
                return false;
        } else if (*key != *name) {
            return false;
        }
    }
    return *key == '\0';
}

/* lowerCamelCase of a .proto field name, as protoc's json_name. */
static void camel(const char *name, char *out, size_t len)
{
    size_t i = 0;
    bool up = false;

    for (; *name != '\0' && i + 1 < len; name++) {
        if (*name == '_') {
            up = true;
            continue;
        }
        out[i++] = up && *name >= 'a' && *name <= 'z' ? *name - 'a' + 'A' : *name;
        up = false;
    }
    out[i] = '\0';
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d,
                                                  const char *key)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (key_matches(key, d->fields[i].name))
            return &d->fields[i];
    return NULL;
}

/* ------------------------------------------------------------ UTF-8 */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid
 * (overlong forms, surrogates and values past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

json_t *tier_rpc_json_string(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n); /* NULL for invalid UTF-8 (or a NUL) */
    char *fixed;
    size_t o = 0;

    if (j != NULL || n > SIZE_MAX / 3)
        return j;
    if ((fixed = malloc(n * 3 + 1)) == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t k = s[i] != '\0' ? utf8_seq((const unsigned char *)s + i, n - i) : 0;
        if (k == 0) {
            memcpy(fixed + o, "\xef\xbf\xbd", 3); /* U+FFFD */
            o += 3;
            i++;
        } else {
            memcpy(fixed + o, s + i, k);
            o += k;
            i += k;
        }
    }
    j = json_stringn(fixed, o);
    free(fixed);
    return j;
}

/* ------------------------------------------------------------ encoding */

static json_t *encode_value(const ProtobufCFieldDescriptor *f, const void *p,
                            tier_rpc_json_style style)
{
    char buf[32];

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (style == TIER_RPC_JSON_PLAIN)
            return json_integer((json_int_t) * (const int64_t *)p);
        snprintf(buf, sizeof(buf), "%lld", (long long)*(const int64_t *)p);
        return json_string(buf);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (style == TIER_RPC_JSON_PLAIN)
            return json_integer((json_int_t) * (const uint64_t *)p);
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)*(const uint64_t *)p);
        return json_string(buf);
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v = f->type == PROTOBUF_C_TYPE_FLOAT ? *(const float *)p : *(const double *)p;
        if (v != v)
            return json_string("NaN");
        if (v > 1.7976931348623157e308 || v < -1.7976931348623157e308)
            return json_string(v > 0 ? "Infinity" : "-Infinity");
        return json_real(v);
    }
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
            (const ProtobufCEnumDescriptor *)f->descriptor, *(const int *)p);
        return ev != NULL ? json_string(ev->name) : json_integer(*(const int *)p);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s != NULL ? tier_rpc_json_string(s, strlen(s)) : json_string("");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        size_t n = sodium_base64_encoded_len(b->len, sodium_base64_VARIANT_ORIGINAL);
        char *t = malloc(n);
        json_t *j;
        if (t == NULL)
            return NULL;
        sodium_bin2base64(t, n, b->data, b->len, sodium_base64_VARIANT_ORIGINAL);
        j = json_string(t);
        free(t);
        return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m != NULL ? tier_rpc_json_encode_as(m, style) : json_null();
    }
    }
    return NULL;
}

/* Size of one element of a repeated field of f's type. */
static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return 4;
    }
}

/* Is a singular field present?  Oneof members only when chosen, proto2 /
 * proto3-optional scalars by their has_ flag; everything else always
 * (defaults are emitted). */
static bool present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *MEMBER(const uint32_t, m, f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
        f->type != PROTOBUF_C_TYPE_STRING)
        return *MEMBER(const protobuf_c_boolean, m, f->quantifier_offset);
    return true;
}

static json_t *encode_field(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                            tier_rpc_json_style style)
{
    json_t *arr;
    size_t n, sz;
    const uint8_t *elems;

    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return encode_value(f, MEMBER(const uint8_t, m, f->offset), style);
    n = *MEMBER(const size_t, m, f->quantifier_offset);
    elems = *MEMBER(uint8_t *const, m, f->offset);
    sz = elem_size(f);
    if ((arr = json_array()) == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(arr, encode_value(f, elems + i * sz, style)) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

json_t *tier_rpc_json_encode(const ProtobufCMessage *m)
{
    return tier_rpc_json_encode_as(m, TIER_RPC_JSON_PROTO3);
}

json_t *tier_rpc_json_encode_as(const ProtobufCMessage *m, tier_rpc_json_style style)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    json_t *obj = json_object();
    char key[256];

    for (unsigned i = 0; obj != NULL && i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label != PROTOBUF_C_LABEL_REPEATED && !present(m, f))
            continue;
        if (style == TIER_RPC_JSON_PLAIN)
            snprintf(key, sizeof(key), "%s", f->name);
        else
            camel(f->name, key, sizeof(key));
        if (json_object_set_new(obj, key, encode_field(m, f, style)) != 0) {
            json_decref(obj);
            obj = NULL;
        }
    }
    return obj;
}

int tier_rpc_json_from_pb(const ProtobufCMessageDescriptor *d, const void *pb, size_t len,
                          char **out, size_t *outlen, char *err, size_t errlen)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, pb);
    json_t *j;
    char *text;

    if (m == NULL) {
        snprintf(err, errlen, "not a valid %s", d->name);
        return TIER_INVALID_ARGUMENT;
    }
    j = tier_rpc_json_encode(m);
    protobuf_c_message_free_unpacked(m, NULL);
    text = j != NULL ? json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        return TIER_RESOURCE_EXHAUSTED;
    }
    *out = text;
    *outlen = strlen(text);
    return TIER_OK;
}

/* ------------------------------------------------------------ decoding */

typedef struct {
    tier_rpc_arena arena;
    const tier_rpc_json_limits *lim;
    char *err;
    size_t errlen;
} decoder;

static int bad(decoder *dc, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(decoder *dc, const char *path, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(dc->err, dc->errlen, "%s: %s", path[0] ? path : "(body)", why);
    return TIER_INVALID_ARGUMENT;
}

/* A decimal integer: the whole string, an optional '-', digits. */
static bool parse_decimal(const char *s, bool *neg, uint64_t *mag)
{
    uint64_t v = 0;

    *neg = *s == '-';
    s += *neg;
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || __builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
            return false;
    }
    *mag = v;
    return true;
}

/* An integer in [lo, hi] (hi <= UINT64_MAX, lo >= INT64_MIN) from a JSON
 * number or string, as sign + magnitude so both ends fit. */
static int get_int(decoder *dc, const char *path, json_t *v, int64_t lo, uint64_t hi, bool *neg,
                   uint64_t *mag)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        *neg = i < 0;
        *mag = i < 0 ? (uint64_t)(-(i + 1)) + 1 : (uint64_t)i;
    } else if (json_is_real(v)) {
        double r = json_real_value(v);
        if (!(r > -9.2e18 && r < 9.2e18) || (double)(int64_t)r != r)
            return bad(dc, path, "expected an integer");
        *neg = r < 0;
        *mag = r < 0 ? (uint64_t)(-(int64_t)r) : (uint64_t)(int64_t)r;
    } else if (json_is_string(v)) {
        if (!parse_decimal(json_string_value(v), neg, mag))
            return bad(dc, path, "expected an integer");
    } else {
        return bad(dc, path, "expected an integer");
    }
    if ((*neg && *mag != 0 && (lo >= 0 || *mag - 1 > (uint64_t)(-(lo + 1)))) ||
        (!*neg && *mag > hi))
        return bad(dc, path, "out of range");
    return TIER_OK;
}

static int get_double(decoder *dc, const char *path, json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        if (strcmp(s, "NaN") == 0)
            *out = __builtin_nan("");
        else if (strcmp(s, "Infinity") == 0)
            *out = __builtin_inf();
        else if (strcmp(s, "-Infinity") == 0)
            *out = -__builtin_inf();
        else if (errno = 0, *out = strtod(s, &end), *s == '\0' || *end != '\0' || errno != 0)
            return bad(dc, path, "expected a number");
    } else {
        return bad(dc, path, "expected a number");
    }
    return TIER_OK;
}

static int decode_message(decoder *dc, const ProtobufCMessageDescriptor *d, json_t *obj,
                          ProtobufCMessage *m, char *path, size_t plen, unsigned depth);

static int decode_enum(decoder *dc, const ProtobufCFieldDescriptor *f, json_t *v, int *out,
                       const char *path)
{
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    const ProtobufCEnumValue *ev = NULL;

    if (json_is_string(v))
        ev = protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
    else if (json_is_integer(v) && json_integer_value(v) >= INT32_MIN &&
             json_integer_value(v) <= INT32_MAX)
        ev = protobuf_c_enum_descriptor_get_value(ed, (int)json_integer_value(v));
    else
        return bad(dc, path, "expected a %s name", ed->name);
    if (ev == NULL)
        return bad(dc, path, "not a value of %s", ed->name);
    *out = ev->value;
    return TIER_OK;
}

static int decode_bytes(decoder *dc, json_t *v, ProtobufCBinaryData *out, const char *path)
{
    const char *s;
    size_t n, got;
    uint8_t *buf;

    if (!json_is_string(v))
        return bad(dc, path, "expected base64 text");
    s = json_string_value(v);
    n = json_string_length(v);
    if ((buf = tier_rpc_arena_alloc(&dc->arena, n / 4 * 3 + 3)) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    if (sodium_base642bin(buf, n / 4 * 3 + 3, s, n, NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 &&
        sodium_base642bin(buf, n / 4 * 3 + 3, s, n, NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0 &&
        sodium_base642bin(buf, n / 4 * 3 + 3, s, n, NULL, &got, NULL,
                          sodium_base64_VARIANT_URLSAFE) != 0 &&
        sodium_base642bin(buf, n / 4 * 3 + 3, s, n, NULL, &got, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return bad(dc, path, "expected base64 text");
    *out = (ProtobufCBinaryData){got, buf};
    return TIER_OK;
}

/* One value of field f into dst (a member, or an element of an array). */
static int decode_value(decoder *dc, const ProtobufCFieldDescriptor *f, json_t *v, void *dst,
                        char *path, size_t plen, unsigned depth)
{
    bool neg;
    uint64_t mag;
    double dv = 0;
    int rv;

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if ((rv = get_int(dc, path, v, INT32_MIN, INT32_MAX, &neg, &mag)) == TIER_OK)
            *(int32_t *)dst = neg ? (int32_t)(-(int64_t)mag) : (int32_t)mag;
        return rv;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if ((rv = get_int(dc, path, v, 0, UINT32_MAX, &neg, &mag)) == TIER_OK)
            *(uint32_t *)dst = (uint32_t)mag;
        return rv;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if ((rv = get_int(dc, path, v, INT64_MIN, INT64_MAX, &neg, &mag)) == TIER_OK)
            *(int64_t *)dst = neg ? (int64_t)(0 - mag) : (int64_t)mag;
        return rv;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if ((rv = get_int(dc, path, v, 0, UINT64_MAX, &neg, &mag)) == TIER_OK)
            *(uint64_t *)dst = mag;
        return rv;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        if ((rv = get_double(dc, path, v, &dv)) != TIER_OK)
            return rv;
        if (f->type == PROTOBUF_C_TYPE_FLOAT)
            *(float *)dst = (float)dv;
        else
            *(double *)dst = dv;
        return TIER_OK;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return bad(dc, path, "expected true or false");
        *(protobuf_c_boolean *)dst = json_is_true(v);
        return TIER_OK;
    case PROTOBUF_C_TYPE_ENUM:
        return decode_enum(dc, f, v, dst, path);
    case PROTOBUF_C_TYPE_STRING: {
        char *s;
        if (!json_is_string(v))
            return bad(dc, path, "expected a string");
        s = tier_rpc_arena_alloc(&dc->arena, json_string_length(v) + 1);
        if (s == NULL)
            return TIER_RESOURCE_EXHAUSTED;
        memcpy(s, json_string_value(v), json_string_length(v));
        *(char **)dst = s;
        return TIER_OK;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return decode_bytes(dc, v, dst, path);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *sd = f->descriptor;
        ProtobufCMessage *sub;
        if (depth + 1 > dc->lim->max_depth)
            return bad(dc, path, "nested deeper than %u", dc->lim->max_depth);
        if ((sub = tier_rpc_arena_alloc(&dc->arena, sd->sizeof_message)) == NULL)
            return TIER_RESOURCE_EXHAUSTED;
        sd->message_init(sub);
        *(ProtobufCMessage **)dst = sub;
        return decode_message(dc, sd, v, sub, path, plen, depth + 1);
    }
    }
    return bad(dc, path, "unsupported field type");
}

static int decode_repeated(decoder *dc, const ProtobufCFieldDescriptor *f, json_t *v,
                           ProtobufCMessage *m, char *path, size_t plen, unsigned depth)
{
    size_t n, sz = elem_size(f), base = strlen(path);
    uint8_t *elems;
    int rv;

    if (!json_is_array(v))
        return bad(dc, path, "expected an array");
    n = json_array_size(v);
    if (n > dc->lim->max_array)
        return bad(dc, path, "at most %zu elements (got %zu)", dc->lim->max_array, n);
    if ((elems = tier_rpc_arena_alloc(&dc->arena, n * sz + 1)) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        snprintf(path + base, plen - base, "[%zu]", i);
        if (json_is_null(e))
            return bad(dc, path, "null in an array");
        if ((rv = decode_value(dc, f, e, elems + i * sz, path, plen, depth)) != TIER_OK)
            return rv;
    }
    *MEMBER(size_t, m, f->quantifier_offset) = n;
    *MEMBER(uint8_t *, m, f->offset) = elems;
    return TIER_OK;
}

static int decode_field(decoder *dc, const ProtobufCFieldDescriptor *f, json_t *v,
                        ProtobufCMessage *m, char *path, size_t plen, unsigned depth)
{
    int rv;

    if (json_is_null(v))
        return TIER_OK; /* the default */
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return decode_repeated(dc, f, v, m, path, plen, depth);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *which = MEMBER(uint32_t, m, f->quantifier_offset);
        if (*which != 0 && *which != f->id)
            return bad(dc, path, "another member of its oneof is already set");
        *which = f->id;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
               f->type != PROTOBUF_C_TYPE_STRING) {
        *MEMBER(protobuf_c_boolean, m, f->quantifier_offset) = 1;
    }
    if ((rv = decode_value(dc, f, v, MEMBER(uint8_t, m, f->offset), path, plen, depth)) != TIER_OK)
        return rv;
    return TIER_OK;
}

static int decode_message(decoder *dc, const ProtobufCMessageDescriptor *d, json_t *obj,
                          ProtobufCMessage *m, char *path, size_t plen, unsigned depth)
{
    size_t base = strlen(path);
    const char *key;
    json_t *v;
    int rv;

    if (!json_is_object(obj))
        return bad(dc, path, "expected an object (%s)", d->name);
    json_object_foreach(obj, key, v)
    {
        const ProtobufCFieldDescriptor *f = find_field(d, key);
        snprintf(path + base, plen - base, "%s%.64s", base ? "." : "", key);
        if (f == NULL)
            return bad(dc, path, "unknown field of %s", d->name);
        if ((rv = decode_field(dc, f, v, m, path, plen, depth)) != TIER_OK)
            return rv;
    }
    path[base] = '\0';
    return TIER_OK;
}

static json_t *parse(const char *text, size_t len, size_t budget, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j;

    pthread_once(&hooks_once, install_hooks);
    parse_budget = &budget;
    parse_refused = false;
    j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    parse_budget = NULL;
    if (j == NULL)
        snprintf(err, errlen, "invalid JSON at line %d column %d: %s", je.line, je.column,
                 parse_refused ? "too large to parse" : je.text);
    return j;
}

int tier_rpc_json_to_pb(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                        const tier_rpc_json_limits *lim, uint8_t **out, size_t *outlen, char *err,
                        size_t errlen)
{
    tier_rpc_json_limits l = {TIER_RPC_JSON_MAX_DEPTH_DEFAULT, TIER_RPC_JSON_MAX_ARRAY_DEFAULT,
                              TIER_RPC_JSON_MAX_PARSE_DEFAULT};
    decoder dc = {.lim = &l, .err = err, .errlen = errlen};
    char path[1024] = "";
    ProtobufCMessage *m;
    json_t *j;
    int rv;

    if (lim != NULL) {
        l.max_depth = lim->max_depth ? lim->max_depth : l.max_depth;
        l.max_array = lim->max_array ? lim->max_array : l.max_array;
        l.max_parse = lim->max_parse ? lim->max_parse : l.max_parse;
    }
    j = len == 0 ? json_object() : parse(text, len, l.max_parse, err, errlen);
    if (j == NULL)
        return TIER_INVALID_ARGUMENT;
    tier_rpc_arena_init(&dc.arena);
    if ((m = tier_rpc_arena_alloc(&dc.arena, d->sizeof_message)) == NULL) {
        rv = TIER_RESOURCE_EXHAUSTED;
    } else {
        d->message_init(m);
        rv = decode_message(&dc, d, j, m, path, sizeof(path), 0);
    }
    json_decref(j);
    if (rv == TIER_OK) {
        *outlen = protobuf_c_message_get_packed_size(m);
        if ((*out = malloc(*outlen + 1)) == NULL)
            rv = TIER_RESOURCE_EXHAUSTED;
        else
            protobuf_c_message_pack(m, *out);
    }
    if (rv == TIER_RESOURCE_EXHAUSTED)
        snprintf(err, errlen, "out of memory");
    tier_rpc_arena_fini(&dc.arena);
    return rv;
}
