/*
 * tier_wire.h -- checks on a packed protobuf message that protobuf-c's
 * unpacked form can no longer show.
 *
 * protobuf-c turns a `string` field into a NUL-terminated char * with no
 * length: "ok.mp4\0../../etc/passwd" on the wire becomes "ok.mp4" in C, and
 * every strlen-based check after unpacking sees a clean name.  So the only
 * place an embedded NUL can be seen is the packed bytes.  We scan them,
 * guided by the message's descriptor (which field numbers are strings,
 * which are nested messages), rather than declaring such fields `bytes` in
 * tier.proto: that would change the generated C types of every client,
 * the worker and tierctl, and would protect only the fields someone
 * remembered to change.  The scan covers every string field of every
 * method, repeated and nested ones too, present and future.
 *
 * Needs only protobuf-c's header (descriptors are plain structs), so it
 * stays in the bottom layer and both rpc/ and tierd/ can call it.
 */
#ifndef TIER_WIRE_H
#define TIER_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* False when some field that `desc` declares `string` (at any depth of
 * nested messages, repeated or not) holds a 0 byte, or when the bytes are
 * not a well-formed message.  *field (may be NULL) names the first bad
 * field. */
bool tier_wire_strings_clean(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                             size_t len, const char **field);

#endif
