/*
 * tls — the server's TLS contexts (OpenSSL 3), built by the parent from
 * the configuration while it is still root: certificates and keys are read
 * here and nowhere else; the smtp workers inherit the contexts in memory.
 * One context per certificate; SNI picks among them (exact name, then a
 * "*.domain" wildcard entry, else the default).
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stddef.h>

#include "daemon/config.h"

struct tls_server;
typedef struct ssl_st SSL;

/* Loads every certificate and key and checks they match: errors as "FILE:LINE: reason". */
struct tls_server *tls_server_new(const struct config *cfg, char *err, size_t errlen);
void tls_server_free(struct tls_server *t);
/* A new server-side SSL object on fd, or NULL. */
SSL *tls_server_ssl(struct tls_server *t, int fd);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" for Received and logs. */
void tls_describe(SSL *ssl, char *out, size_t outsz);

#endif
