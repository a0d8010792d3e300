/*
 * tier_wire.c -- see tier_wire.h.  A minimal walk of the protobuf wire
 * format: only length-delimited fields are looked into; everything else is
 * skipped by its wire type.
 */
#include "tier_wire.h"

#include <string.h>

/* Nesting deeper than this is refused: our messages are at most 3 deep,
 * and a hostile message must not recurse the stack away. */
#define WIRE_MAX_DEPTH 16

static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return false;
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return true;
        }
    }
    return false;
}

static const ProtobufCFieldDescriptor *field_of(const ProtobufCMessageDescriptor *d, uint64_t id)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].id == id)
            return &d->fields[i];
    return NULL;
}

static bool scan(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
                 int depth, const char **bad)
{
    if (depth > WIRE_MAX_DEPTH)
        return false;
    while (p < end) {
        uint64_t tag, n;
        const ProtobufCFieldDescriptor *f;

        if (!get_varint(&p, end, &tag))
            return false;
        switch (tag & 7) {
        case 0: /* varint */
            if (!get_varint(&p, end, &n))
                return false;
            break;
        case 1: /* 64-bit */
            if (end - p < 8)
                return false;
            p += 8;
            break;
        case 5: /* 32-bit */
            if (end - p < 4)
                return false;
            p += 4;
            break;
        case 2: /* length-delimited */
            if (!get_varint(&p, end, &n) || n > (uint64_t)(end - p))
                return false;
            f = field_of(d, tag >> 3);
            if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, n) != NULL) {
                if (bad != NULL)
                    *bad = f->name;
                return false;
            }
            if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                !scan(f->descriptor, p, p + n, depth + 1, bad))
                return false;
            p += n;
            break;
        default: /* groups: never in proto3, and protobuf-c refuses them */
            return false;
        }
    }
    return true;
}

bool tier_wire_strings_clean(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                             size_t len, const char **field)
{
    if (field != NULL)
        *field = "";
    if (len == 0)
        return true;
    return data != NULL && scan(desc, data, data + len, 0, field);
}
