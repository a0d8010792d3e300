/*
 * tier_rpc_json.h -- any protobuf-c message to and from JSON, following
 * protobuf's proto3 JSON mapping, driven by the messages' descriptors (so
 * no per-message code): the HTTP gateway's translation, usable by anything
 * else that wants JSON.  Uses jansson.
 *
 * Output (packed message -> JSON):
 *   - field names in lowerCamelCase (db_level -> dbLevel);
 *   - every field is emitted, defaults included (protobuf's
 *     EmittingDefaults): a curl user sees "count": "0", not nothing; an
 *     unset message field is null; oneof members not chosen are left out;
 *   - 64-bit integers as decimal strings (JavaScript cannot hold them),
 *     32-bit ones as numbers, enums by name (a value the descriptor does
 *     not know: its number), bytes as base64, NaN/Infinity as strings;
 *   - a string holding invalid UTF-8 has each bad byte replaced by U+FFFD,
 *     so the output is always valid JSON.
 * Input (JSON -> packed message):
 *   - a JSON object; field names in lowerCamelCase or as in the .proto;
 *     an unknown field, a duplicate key, a wrong type or a number out of
 *     range is INVALID_ARGUMENT naming the field's path
 *     ("reports[2].count: expected an integer");
 *   - integers as numbers (integral reals too) or decimal strings; enums
 *     by name or by a number the enum defines; bytes as base64 (standard
 *     or URL-safe alphabet); null is the field's default; "\u0000" in a
 *     string is refused (protobuf-c strings end at a NUL);
 *   - caps: nesting depth, elements of each array, and the memory the
 *     JSON parser may take for one text (a 4 MiB text of [{},{},...] would
 *     otherwise cost jansson hundreds of MiB).  The method's own caps
 *     apply after that, as for any call.
 */
#ifndef TIER_RPC_JSON_H
#define TIER_RPC_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#define TIER_RPC_JSON_MAX_DEPTH_DEFAULT 32u
#define TIER_RPC_JSON_MAX_ARRAY_DEFAULT 100000u
#define TIER_RPC_JSON_MAX_PARSE_DEFAULT ((size_t)128 << 20)

typedef struct {
    unsigned max_depth; /* nested messages; 0 = 32 */
    size_t max_array;   /* elements of one repeated field; 0 = 100000 */
    size_t max_parse;   /* bytes jansson may allocate to parse one text; 0 = 128 MiB */
} tier_rpc_json_limits;

/*
 * JSON text (len bytes; empty = {}) to a packed message of type d:
 * *out is malloc'ed (free it).  TIER_OK, or INVALID_ARGUMENT (the reason
 * and field path in err), RESOURCE_EXHAUSTED (over max_parse, or out of
 * memory).  lim may be NULL for the defaults.
 */
int tier_rpc_json_to_pb(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                        const tier_rpc_json_limits *lim, uint8_t **out, size_t *outlen, char *err,
                        size_t errlen);

/* A packed message of type d to JSON text: *out malloc'ed and NUL
 * terminated.  INVALID_ARGUMENT when the bytes are not such a message. */
int tier_rpc_json_from_pb(const ProtobufCMessageDescriptor *d, const void *pb, size_t len,
                          char **out, size_t *outlen, char *err, size_t errlen);

/* A message as a new jansson value (NULL: out of memory), for documents
 * that embed one. */
json_t *tier_rpc_json_encode(const ProtobufCMessage *m);

/* The same walk in another style: PROTO3 is the mapping above; PLAIN is
 * tierctl's records (.proto field names, 64-bit integers as numbers). */
typedef enum { TIER_RPC_JSON_PROTO3, TIER_RPC_JSON_PLAIN } tier_rpc_json_style;
json_t *tier_rpc_json_encode_as(const ProtobufCMessage *m, tier_rpc_json_style style);

/* A JSON string of s[0..n), invalid UTF-8 bytes replaced by U+FFFD. */
json_t *tier_rpc_json_string(const char *s, size_t n);

#endif
