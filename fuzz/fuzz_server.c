/*
 * fuzz_server.c -- libFuzzer target: the rpc server (rpc/tier_rpc_server.c)
 * end to end, in process.  A tier_rpc_server with small caps (2 pool
 * threads, 4 contexts, 64 KiB messages, a 64-entry dedupe cache) serves on
 * inproc://fuzz-server-<pid> three methods with real tier.proto messages
 * (AddContent inline, GetContent pooled, ListLevels inline), Health with
 * one probe, a gate and an auth hook that knows one token, "good-token",
 * allowed everything but ListLevels.  Each input becomes one frame sent on
 * a req0 socket: the first byte picks raw mode (the rest of the bytes as
 * the frame) or structured mode (a valid envelope built from the bytes:
 * method, ids, deadline, metadata with good, bad, malformed, duplicated or
 * too many authorization entries, a payload that is random, a packed
 * AddContentRequest or padded past the server's limit).
 *
 * What must hold, for every frame up to twice the limit: a reply comes back
 * (within 5 s), unpacks as a tier.rpc.Reply with a gRPC code 0..16 and is
 * at most the limit; a frame that is an envelope gets its request_id echoed
 * (when within the limit); an OK reply's payload unpacks as the method's
 * reply type (and, for uncached calls, says what the handler wrote); no
 * call to a registered method other than Health without exactly one
 * "Bearer good-token" ever gets OK, nor any call to ListLevels, nor any
 * call to an unknown method; handlers only ever run for the caller the
 * auth hook let in.  ASan and UBSan watch the server's threads meanwhile.
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpc.pb-c.h"
#include "tier.pb-c.h"
#include "tier_methods.h"
#include "tier_rpc.h"
#include "tier_time.h"
#include "tier_wire.h"

#define MAX_MSG ((size_t)64 << 10)
#define MAX_FRAME (2 * MAX_MSG) /* what we send at most: nng drops a pipe beyond */
#define GOOD_TOKEN "good-token"
#define CALLER_ID 42u
#define HUGE_CID 777 /* GetContent makes a reply larger than the limit */

static tier_rpc_server *srv;
static nng_socket sock;
static atomic_bool denied_ran; /* ListLevels ran: the auth hook was bypassed */
static bool verbose;           /* FUZZ_SERVER_VERBOSE=1: print each reply's code */

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_server: property violated: %s\n", what);
        abort();
    }
}

/* ------------------------------------------------------------ the server */

static void check_caller(tier_rpc_ctx *call)
{
    const tier_rpc_caller *who = tier_rpc_call_caller(call);
    const ProtobufCBinaryData *auth = tier_rpc_metadata(call, TIER_RPC_AUTH_KEY);

    check(who->id == CALLER_ID && strcmp(who->name, "fuzzer") == 0,
          "a handler ran for a caller the auth hook did not let in");
    check(auth != NULL && auth->len == 7 + strlen(GOOD_TOKEN),
          "a handler ran without the authorization entry");
}

static int add_content(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                       ProtobufCMessage *out)
{
    const Tier__AddContentRequest *req = (const Tier__AddContentRequest *)in;
    Tier__AddContentReply *rep = (Tier__AddContentReply *)out;
    Tier__Content *c;

    (void)arg;
    check_caller(call);
    if (req->filename[0] == '\0')
        return tier_rpc_set_message(call, TIER_INVALID_ARGUMENT, "empty filename");
    if (req->cid < 0)
        return tier_rpc_set_message(call, TIER_OUT_OF_RANGE, "cid %lld < 0", (long long)req->cid);
    if ((c = tier_rpc_alloc(call, sizeof(*c))) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    tier__content__init(c);
    c->cid = req->cid;
    c->filename = tier_rpc_strdup(call, req->filename);
    c->level = tier_rpc_strdup(call, "hot");
    if (c->filename == NULL || c->level == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    c->generate_time_ms = tier_rpc_deadline_mono_us(call);
    rep->content = c;
    return TIER_OK;
}

static int get_content(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                       ProtobufCMessage *out)
{
    const Tier__GetContentRequest *req = (const Tier__GetContentRequest *)in;
    Tier__GetContentReply *rep = (Tier__GetContentReply *)out;
    Tier__Content *c;
    char name[32];

    (void)arg;
    check_caller(call);
    if (req->cid <= 0)
        return tier_rpc_set_message(call, TIER_NOT_FOUND, "no content %lld", (long long)req->cid);
    if ((c = tier_rpc_alloc(call, sizeof(*c))) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    tier__content__init(c);
    c->cid = req->cid;
    if (req->cid == HUGE_CID) { /* the server must refuse to send it */
        c->filename = tier_rpc_alloc(call, MAX_MSG + 1);
        if (c->filename == NULL)
            return TIER_RESOURCE_EXHAUSTED;
        memset(c->filename, 'x', MAX_MSG);
    } else {
        snprintf(name, sizeof(name), "f-%lld", (long long)req->cid);
        c->filename = tier_rpc_strndup(call, name, strlen(name));
    }
    rep->content = c;
    return TIER_OK;
}

static int list_levels(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *in,
                       ProtobufCMessage *out)
{
    (void)arg, (void)call, (void)in, (void)out;
    atomic_store(&denied_ran, true);
    return TIER_OK;
}

static int probe(void *arg, char *msg, size_t msglen)
{
    (void)arg;
    snprintf(msg, msglen, "fine");
    return TIER_OK;
}

static int gate(void *arg, char *msg, size_t msglen)
{
    (void)arg, (void)msg, (void)msglen;
    return TIER_OK;
}

static int auth(void *arg, const char *method, const uint8_t *token, size_t len,
                tier_rpc_caller *who, char *msg, size_t msglen)
{
    (void)arg;
    if (token == NULL || len != strlen(GOOD_TOKEN) || memcmp(token, GOOD_TOKEN, len) != 0) {
        snprintf(msg, msglen, "unknown token");
        return TIER_UNAUTHENTICATED;
    }
    if (strcmp(method, TIER_M_LIST_LEVELS) == 0) {
        snprintf(msg, msglen, "not yours");
        return TIER_PERMISSION_DENIED;
    }
    who->id = CALLER_ID;
    who->roles = 1;
    snprintf(who->name, sizeof(who->name), "fuzzer");
    return TIER_OK;
}

static void setup(void)
{
    tier_rpc_server_opts opts = {
        .nthreads = 2,
        .ncontexts = 4,
        .max_msg = MAX_MSG,
        .dedupe_entries = 64,
        .dedupe_bytes = 256u << 10,
    };
    char url[64];

    snprintf(url, sizeof(url), "inproc://fuzz-server-%d", (int)getpid());
    if (tier_rpc_server_open(&srv, url, &opts) != TIER_OK ||
        tier_rpc_server_add(srv, TIER_M_ADD_CONTENT, &tier__add_content_request__descriptor,
                            &tier__add_content_reply__descriptor, add_content, NULL,
                            TIER_RPC_INLINE) != TIER_OK ||
        tier_rpc_server_add(srv, TIER_M_GET_CONTENT, &tier__get_content_request__descriptor,
                            &tier__get_content_reply__descriptor, get_content, NULL,
                            0) != TIER_OK ||
        tier_rpc_server_add(srv, TIER_M_LIST_LEVELS, &tier__list_levels_request__descriptor,
                            &tier__list_levels_reply__descriptor, list_levels, NULL,
                            TIER_RPC_INLINE) != TIER_OK ||
        tier_rpc_server_add_health(srv, "fuzz-probe", probe, NULL) != TIER_OK ||
        tier_rpc_server_set_gate(srv, gate, NULL) != TIER_OK ||
        tier_rpc_server_set_auth(srv, auth, NULL) != TIER_OK ||
        tier_rpc_server_start(srv) != TIER_OK) {
        fprintf(stderr, "fuzz_server: cannot start the server\n");
        abort();
    }
    if (nng_req0_open(&sock) != 0 || nng_dial(sock, url, NULL, 0) != 0 ||
        nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 5000) != 0 ||
        nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 5000) != 0 ||
        nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE) != 0 ||
        nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, 0) != 0) {
        fprintf(stderr, "fuzz_server: cannot open the req0 socket\n");
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    verbose = getenv("FUZZ_SERVER_VERBOSE") != NULL;
    setup();
    return 0;
}

/* ------------------------------------------------------------ input */

typedef struct {
    const uint8_t *p;
    size_t n;
} input;

static uint8_t u8(input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static uint64_t u64(input *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | u8(in);
    return v;
}

/* Up to max bytes of the input, as they are (NULs included). */
static size_t take(input *in, size_t max, const uint8_t **out)
{
    size_t n = u8(in);
    if (n > max)
        n = max;
    if (n > in->n)
        n = in->n;
    *out = in->p;
    in->p += n;
    in->n -= n;
    return n;
}

/* Methods of structured frames; METHOD_NUL gets its \x01 turned into a NUL
 * once packed. */
enum { M_ADD, M_GET, M_LIST, M_HEALTH, M_UNKNOWN, M_NUL, M_EMPTY, NMETHODS };
static const char *const METHODS[NMETHODS] = {
    TIER_M_ADD_CONTENT,
    TIER_M_GET_CONTENT,
    TIER_M_LIST_LEVELS,
    TIER_RPC_HEALTH_METHOD,
    "tier.Tier/NoSuchMethod",
    TIER_M_ADD_CONTENT "\x01",
    "",
};

static size_t put_varint(uint8_t *b, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    return n;
}

/* A packed AddContentRequest with a filename taken from the input, NULs
 * and all (sent to other methods too: they must cope). */
static size_t pack_add_content(input *in, uint8_t *buf)
{
    const uint8_t *name;
    size_t len = take(in, 255, &name), n = 0;
    uint64_t cid = u8(in) & 1 ? u64(in) : u8(in);

    buf[n++] = 0x0a;
    n += put_varint(buf + n, len);
    memcpy(buf + n, name, len);
    n += len;
    if (cid != 0) {
        buf[n++] = 0x10;
        n += put_varint(buf + n, cid);
    }
    return n;
}

static size_t pack_get_content(input *in, uint8_t *buf)
{
    uint8_t sel = u8(in);
    int64_t cid = sel % 4 == 0 ? HUGE_CID : sel % 4 == 1 ? (int64_t)u64(in) : sel;
    size_t n = 0;

    buf[n++] = 0x08;
    n += put_varint(buf + n, (uint64_t)cid);
    return n;
}

/* Builds a frame from the input into *frame (malloc'ed); returns its size. */
static size_t build_frame(input *in, uint8_t **frame)
{
    Tier__Rpc__Request req = TIER__RPC__REQUEST__INIT;
    Tier__Rpc__Metadata md[24], *mdp[24];
    static const char LONG_TOKEN[] =
        "Bearer "
        "good-tokengood-tokengood-tokengood-tokengood-tokengood-tokengood-tokengood-tokengood-"
        "tokengood-tokengood-tokengood-tokengood-tokengood-tokengood-tokengood-tokengood-tokengood-"
        "tokengood-tokengood-tokengood-tokengood-tokengood-tokengood-tokengood-tokengood-tokengood-"
        "tokengood-token";
    uint8_t *payload = NULL, sel;
    int mi = u8(in) % NMETHODS;
    size_t n;

    req.method = (char *)METHODS[mi];
    sel = u8(in);
    req.client_id = sel % 3 == 0 ? 0 : sel % 3 == 1 ? u8(in) : u64(in);
    sel = u8(in);
    req.request_id = sel % 3 == 0 ? 0 : sel % 3 == 1 ? u8(in) : u64(in);
    sel = u8(in);
    switch (sel % 7) {
    case 0:
        req.deadline_ms = 0;
        break;
    case 1:
        req.deadline_ms = INT64_MAX - u8(in);
        break;
    case 2:
        req.deadline_ms = INT64_MIN + u8(in);
        break;
    case 3:
        req.deadline_ms = tier_now_ms() + 1000 + u8(in) * 100;
        break;
    case 4:
        req.deadline_ms = tier_now_ms() - u8(in);
        break;
    case 5:
        req.deadline_ms = tier_now_ms() + TIER_RPC_MAX_DEADLINE_MS + u8(in);
        break;
    default:
        req.deadline_ms = (int64_t)u64(in);
        break;
    }
    sel = u8(in);
    req.n_metadata = sel % 4 == 0 ? 0 : sel % 4 == 3 ? 16 + sel % 8 : sel % 4;
    req.metadata = mdp;
    for (size_t i = 0; i < req.n_metadata; i++) {
        const uint8_t *v;
        tier__rpc__metadata__init(&md[i]);
        mdp[i] = &md[i];
        md[i].key = TIER_RPC_AUTH_KEY;
        switch (u8(in) % 8) {
        case 0:
            md[i].value.data = (uint8_t *)"Bearer " GOOD_TOKEN;
            break;
        case 1:
            md[i].value.data = (uint8_t *)"Bearer bad-token";
            break;
        case 2:
            md[i].value.data = (uint8_t *)GOOD_TOKEN; /* no "Bearer " */
            break;
        case 3:
            md[i].value.data = (uint8_t *)"Bearer ";
            break;
        case 4:
            md[i].value.data = (uint8_t *)LONG_TOKEN;
            break;
        case 5:
            md[i].key = "x-trace-id";
            md[i].value.data = (uint8_t *)"Bearer " GOOD_TOKEN;
            break;
        default:
            md[i].value.len = take(in, 300, &v);
            md[i].value.data = (uint8_t *)v;
            continue;
        }
        md[i].value.len = strlen((const char *)md[i].value.data);
    }
    sel = u8(in);
    switch (sel % 4) {
    case 0: /* the rest of the input */
        req.payload.data = (uint8_t *)in->p;
        req.payload.len = in->n;
        break;
    case 1: /* a well-formed request of the method's type */
        if ((payload = malloc(300)) == NULL)
            abort();
        req.payload.data = payload;
        req.payload.len =
            mi == M_GET ? pack_get_content(in, payload) : pack_add_content(in, payload);
        break;
    case 2:
        break;
    default: { /* padded to around the server's limit */
        size_t want = MAX_MSG - 256 + (size_t)u8(in) * 2 + (size_t)(sel >> 2) * 1024;
        if (want > MAX_FRAME - 8192)
            want = MAX_FRAME - 8192;
        if ((payload = calloc(1, want)) == NULL)
            abort();
        memcpy(payload, in->p, in->n < want ? in->n : want);
        req.payload.data = payload;
        req.payload.len = want;
        break;
    }
    }
    n = tier__rpc__request__get_packed_size(&req);
    if ((*frame = malloc(n + 1)) == NULL)
        abort();
    tier__rpc__request__pack(&req, *frame);
    free(payload);
    if (mi == M_NUL) {
        uint8_t *p = memmem(*frame, n, METHODS[M_NUL], strlen(METHODS[M_NUL]));
        check(p != NULL, "the method with a NUL is in its envelope");
        p[strlen(METHODS[M_NUL]) - 1] = '\0';
    }
    return n;
}

/* ------------------------------------------------------------ the oracle */

static bool has_good_token(const Tier__Rpc__Request *req)
{
    const ProtobufCBinaryData *v = NULL;

    for (size_t i = 0; i < req->n_metadata; i++) {
        if (strcmp(req->metadata[i]->key, TIER_RPC_AUTH_KEY) != 0)
            continue;
        if (v != NULL)
            return false; /* two of them */
        v = &req->metadata[i]->value;
    }
    return v != NULL && v->len == 7 + strlen(GOOD_TOKEN) &&
           memcmp(v->data, "Bearer " GOOD_TOKEN, v->len) == 0;
}

/* The properties of the reply to frame. */
static void check_reply(const uint8_t *frame, size_t flen, const uint8_t *buf, size_t blen)
{
    Tier__Rpc__Reply *rep;
    Tier__Rpc__Request *req;

    check(blen <= MAX_MSG, "a reply larger than the limit");
    rep = tier__rpc__reply__unpack(NULL, blen, buf);
    check(rep != NULL, "the reply is a tier.rpc.Reply");
    check((int)rep->code >= 0 && (int)rep->code <= 16, "the reply's code is a gRPC code");
    if (verbose)
        fprintf(stderr, "fuzz_server: %zu-byte frame: code %d \"%s\"\n", flen, (int)rep->code,
                rep->message);
    req = flen <= MAX_MSG ? tier__rpc__request__unpack(NULL, flen, frame) : NULL;
    if (req != NULL)
        check(rep->request_id == req->request_id, "the reply echoes the request id");
    if (rep->code == TIER__RPC__CODE__OK) {
        const ProtobufCMessageDescriptor *d = NULL;
        ProtobufCMessage *m;
        const char *method = req != NULL ? req->method : NULL;

        check(req != NULL, "OK only for an envelope within the limit");
        if (strcmp(method, TIER_RPC_HEALTH_METHOD) == 0) {
            d = &tier__rpc__health_reply__descriptor;
        } else if (strcmp(method, TIER_M_ADD_CONTENT) == 0) {
            d = &tier__add_content_reply__descriptor;
        } else if (strcmp(method, TIER_M_GET_CONTENT) == 0) {
            d = &tier__get_content_reply__descriptor;
        }
        check(d != NULL, "OK for an unknown method (or ListLevels, denied)");
        check(tier_wire_strings_clean(&tier__rpc__request__descriptor, frame, flen, NULL),
              "OK for an envelope with a NUL in a string");
        /* A resend (same client_id and request_id) is answered from the
         * dedupe cache whatever its payload: only fresh calls say more. */
        if (req->client_id == 0)
            check(tier_wire_strings_clean(d == &tier__rpc__health_reply__descriptor
                                              ? &tier__rpc__health_request__descriptor
                                          : d == &tier__add_content_reply__descriptor
                                              ? &tier__add_content_request__descriptor
                                              : &tier__get_content_request__descriptor,
                                          req->payload.data, req->payload.len, NULL),
                  "OK for a request with a NUL in a string");
        if (d != &tier__rpc__health_reply__descriptor)
            check(has_good_token(req), "OK without one \"Bearer good-token\"");
        m = protobuf_c_message_unpack(d, NULL, rep->payload.len, rep->payload.data);
        check(m != NULL, "an OK payload unpacks as the method's reply");
        if (d == &tier__rpc__health_reply__descriptor) {
            const Tier__Rpc__HealthReply *h = (const Tier__Rpc__HealthReply *)m;
            check(h->status == TIER__RPC__HEALTH_REPLY__STATUS__SERVING && h->n_dependencies == 1 &&
                      h->dependencies[0]->ok && strcmp(h->dependencies[0]->name, "fuzz-probe") == 0,
                  "Health says SERVING with its probe");
        } else if (d == &tier__add_content_reply__descriptor) {
            const Tier__AddContentReply *r = (const Tier__AddContentReply *)m;
            check(r->content != NULL && strcmp(r->content->level, "hot") == 0,
                  "AddContent's reply is what its handler wrote");
            if (req->client_id == 0) { /* not possibly a cached reply of another payload */
                Tier__AddContentRequest *a =
                    tier__add_content_request__unpack(NULL, req->payload.len, req->payload.data);
                check(a != NULL && strcmp(a->filename, r->content->filename) == 0 &&
                          a->cid == r->content->cid,
                      "AddContent's reply matches its request");
                tier__add_content_request__free_unpacked(a, NULL);
            }
        } else {
            const Tier__GetContentReply *r = (const Tier__GetContentReply *)m;
            check(r->content != NULL && r->content->cid > 0 && r->content->cid != HUGE_CID,
                  "GetContent's reply is what its handler wrote");
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    if (req != NULL)
        tier__rpc__request__free_unpacked(req, NULL);
    tier__rpc__reply__free_unpacked(rep, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size};
    uint8_t *frame = NULL, *buf = NULL;
    size_t flen, blen = 0;
    int rv;

    if (size < 1)
        return 0;
    if ((u8(&in) & 3) == 0) { /* raw */
        flen = in.n < MAX_FRAME ? in.n : MAX_FRAME;
        if ((frame = malloc(flen + 1)) == NULL)
            abort();
        memcpy(frame, in.p, flen);
    } else {
        flen = build_frame(&in, &frame);
        if (flen > MAX_FRAME) {
            free(frame);
            return 0;
        }
    }
    if ((rv = nng_send(sock, frame, flen, 0)) != 0) {
        fprintf(stderr, "fuzz_server: send: %s\n", nng_strerror(rv));
        abort();
    }
    if ((rv = nng_recv(sock, &buf, &blen, NNG_FLAG_ALLOC)) != 0) {
        fprintf(stderr, "fuzz_server: no reply to a frame of %zu bytes: %s\n", flen,
                nng_strerror(rv));
        abort();
    }
    check_reply(frame, flen, buf, blen);
    check(!atomic_load(&denied_ran), "ListLevels ran though the auth hook denied it");
    nng_free(buf, blen);
    free(frame);
    return 0;
}
