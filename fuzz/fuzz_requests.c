/*
 * fuzz_requests.c -- libFuzzer target: the protobuf-c decoders of every
 * message tierd and the workers accept (proto/rpc.proto, the envelope, and
 * proto/tier.proto, every request and the pushed MoveJob).  The first byte
 * picks the message; the rest is the wire bytes.  A message that decodes
 * must encode again to the size protobuf-c announces.  (Decoding what was
 * encoded again is not required: protobuf-c 1.4.1 keeps an unknown field
 * with the non-canonical tag 0 -- "80 00" -- that it then refuses when it
 * reads its own output.  Harmless for us: tierd never re-encodes a request.)
 */
#include <stdint.h>
#include <stdlib.h>

#include "rpc.pb-c.h"
#include "tier.pb-c.h"

static const ProtobufCMessageDescriptor *const MESSAGES[] = {
    &tier__rpc__request__descriptor,
    &tier__rpc__reply__descriptor,
    &tier__rpc__health_request__descriptor,
    &tier__add_content_request__descriptor,
    &tier__report_views_request__descriptor,
    &tier__get_content_request__descriptor,
    &tier__get_history_request__descriptor,
    &tier__list_levels_request__descriptor,
    &tier__set_levels_request__descriptor,
    &tier__list_jobs_request__descriptor,
    &tier__get_job_request__descriptor,
    &tier__job_control_request__descriptor,
    &tier__claim_job_request__descriptor,
    &tier__renew_lease_request__descriptor,
    &tier__complete_job_request__descriptor,
    &tier__fail_job_request__descriptor,
    &tier__move_job__descriptor,
    &tier__scrub_request__descriptor,
    &tier__post_comment_request__descriptor,
    &tier__post_comments_request__descriptor,
    &tier__edit_comment_request__descriptor,
    &tier__delete_comment_request__descriptor,
    &tier__restore_comment_request__descriptor,
    &tier__top_contents_request__descriptor,
    &tier__latest_comments_request__descriptor,
    &tier__add_contents_request__descriptor,
    &tier__watch_top_request__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *d;
    ProtobufCMessage *m;
    uint8_t *buf;
    size_t n;

    /* The transport caps frames at 4 MiB before anything is decoded. */
    if (size < 1 || size > (4u << 20))
        return 0;
    d = MESSAGES[data[0] % (sizeof(MESSAGES) / sizeof(MESSAGES[0]))];
    if ((m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1)) == NULL)
        return 0;
    n = protobuf_c_message_get_packed_size(m);
    if ((buf = malloc(n + 1)) == NULL)
        abort();
    if (protobuf_c_message_pack(m, buf) != n)
        abort();
    protobuf_c_message_free_unpacked(m, NULL);
    free(buf);
    return 0;
}
