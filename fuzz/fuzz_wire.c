/*
 * fuzz_wire.c -- libFuzzer target: the packed-message scan for embedded
 * NULs (common/tier_wire.h) that runs on every request before it is
 * unpacked, with the descriptors of every request message.  Property: when
 * the scan calls a message clean and protobuf-c decodes it, no decoded
 * string is shorter than its bytes on the wire would allow -- checked here
 * the cheap way: the scan must never crash, loop or read out of bounds
 * (ASan), for any bytes and any message type.
 */
#include <stdint.h>
#include <stdlib.h>

#include "rpc.pb-c.h"
#include "tier.pb-c.h"
#include "tier_wire.h"

static const ProtobufCMessageDescriptor *const MESSAGES[] = {
    &tier__rpc__request__descriptor,          &tier__add_content_request__descriptor,
    &tier__report_views_request__descriptor,  &tier__set_levels_request__descriptor,
    &tier__claim_job_request__descriptor,     &tier__complete_job_request__descriptor,
    &tier__fail_job_request__descriptor,      &tier__post_comment_request__descriptor,
    &tier__post_comments_request__descriptor, &tier__edit_comment_request__descriptor,
    &tier__scrub_request__descriptor,         &tier__top_contents_request__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *field = NULL;

    if (size < 1 || size > (4u << 20))
        return 0;
    tier_wire_strings_clean(MESSAGES[data[0] % (sizeof(MESSAGES) / sizeof(MESSAGES[0]))], data + 1,
                            size - 1, &field);
    return 0;
}
