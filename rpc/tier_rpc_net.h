/*
 * tier_rpc_net.h -- listening and dialling nng sockets, with TLS.
 *
 * Every socket of tier (the rpc server and clients, tierd's push socket,
 * the workers' pull sockets) listens and dials through these two
 * functions, so a tls+tcp:// address is set up the same way everywhere:
 *
 *   listener: its certificate chain and key (PEM files; the key must not be
 *             readable by group or others, as ssh insists for its keys);
 *   dialer:   the server's certificate must verify against ca_file (default
 *             the system's CAs) and carry server_name (default the URL's
 *             host).  There is no way to turn verification off.
 *
 * tcp://, ipc:// and inproc:// addresses ignore the TLS settings.
 */
#ifndef TIER_RPC_NET_H
#define TIER_RPC_NET_H

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <stdbool.h>
#include <stddef.h>

#include "tier_rpc.h"

/* Both return a tier_status, with the reason in err. */
int tier_rpc_net_listen(nng_socket s, const char *url, const tier_rpc_tls *tls, char *err,
                        size_t len);
/* Non-blocking: returns at once, nng dials (and redials) in the background. */
int tier_rpc_net_dial(nng_socket s, const char *url, const tier_rpc_tls *tls, char *err,
                      size_t len);

bool tier_rpc_net_is_tls(const char *url);
/* The TLS configuration of a listener (its certificate and key, checked as
 * above), for listeners not made by tier_rpc_net_listen (the HTTP server).
 * The caller frees *out with nng_tls_config_free. */
int tier_rpc_net_server_tls(nng_tls_config **out, const tier_rpc_tls *tls, char *err, size_t len);
/* True for addresses no other machine can reach: tcp on 127.x, [::1] or
 * localhost, ipc://, inproc://. */
bool tier_rpc_net_is_loopback(const char *url);

#endif
