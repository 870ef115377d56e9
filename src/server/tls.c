/* tls — server TLS contexts with SNI (see tls.h). */
#include "server/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct tls_server {
	SSL_CTX *ctx[CONFIG_MAX_SNI + 1];	/* [0] = default */
	char     name[CONFIG_MAX_SNI + 1][CONFIG_NAME_MAX + 1];
	size_t   n;
};

static void
ssl_reason(char *out, size_t outsz)
{
	unsigned long e = ERR_peek_last_error();

	snprintf(out, outsz, "%s", e ? ERR_reason_error_string(e) : "unknown error");
	ERR_clear_error();
}

/* RFC 6066 3: choose the certificate for the name the client asked for. */
static int
on_servername(SSL *ssl, int *alert, void *arg)
{
	struct tls_server *t = arg;
	const char *want = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const char *dot;
	size_t i;

	if (want == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	for (i = 1; i < t->n; i++)
		if (strcasecmp(t->name[i], want) == 0) {
			SSL_set_SSL_CTX(ssl, t->ctx[i]);
			return SSL_TLSEXT_ERR_OK;
		}
	if ((dot = strchr(want, '.')) != NULL)
		for (i = 1; i < t->n; i++)
			if (t->name[i][0] == '*' && strcasecmp(t->name[i] + 1, dot) == 0) {
				SSL_set_SSL_CTX(ssl, t->ctx[i]);
				return SSL_TLSEXT_ERR_OK;
			}
	return SSL_TLSEXT_ERR_OK;	/* the default certificate */
}

static SSL_CTX *
make_ctx(const struct config *cfg, const struct tls_cert_cfg *c, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char why[256];

	if (ctx == NULL) {
		snprintf(err, errlen, "%s:%d: tls: cannot make a context", cfg->path, c->line);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, cfg->tls.min_version);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (cfg->tls.ciphers && SSL_CTX_set_cipher_list(ctx, cfg->tls.ciphers) != 1) {
		snprintf(err, errlen, "%s:%d: tls: ciphers: no usable cipher in \"%s\"",
		    cfg->path, cfg->tls.line, cfg->tls.ciphers);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
		ssl_reason(why, sizeof(why));
		snprintf(err, errlen, "%s:%d: tls: cert \"%s\": %s", cfg->path, c->line, c->cert, why);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
		ssl_reason(why, sizeof(why));
		if (strcmp(why, "key values mismatch") == 0)
			snprintf(err, errlen, "%s:%d: tls: key \"%s\" does not match the certificate "
			    "\"%s\"", cfg->path, c->line, c->key, c->cert);
		else
			snprintf(err, errlen, "%s:%d: tls: key \"%s\": %s", cfg->path, c->line, c->key, why);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "%s:%d: tls: key \"%s\" does not match the certificate \"%s\"",
		    cfg->path, c->line, c->key, c->cert);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls_server *
tls_server_new(const struct config *cfg, char *err, size_t errlen)
{
	struct tls_server *t;
	size_t i;

	if (!cfg->tls.present)
		return NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", cfg->path);
		return NULL;
	}
	for (i = 0; i < cfg->tls.ncerts; i++) {
		const struct tls_cert_cfg *c = &cfg->tls.certs[i];

		if ((t->ctx[i] = make_ctx(cfg, c, err, errlen)) == NULL) {
			tls_server_free(t);
			return NULL;
		}
		snprintf(t->name[i], sizeof(t->name[i]), "%s", c->name);
		t->n = i + 1;
	}
	SSL_CTX_set_tlsext_servername_callback(t->ctx[0], on_servername);
	SSL_CTX_set_tlsext_servername_arg(t->ctx[0], t);
	return t;
}

void
tls_server_free(struct tls_server *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++)
		SSL_CTX_free(t->ctx[i]);
	free(t);
}

SSL *
tls_server_ssl(struct tls_server *t, int fd)
{
	SSL *ssl = SSL_new(t->ctx[0]);

	if (ssl && SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	if (ssl)
		SSL_set_accept_state(ssl);
	return ssl;
}

void
tls_describe(SSL *ssl, char *out, size_t outsz)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	int alg = 0, bits = c ? SSL_CIPHER_get_bits(c, &alg) : 0;

	snprintf(out, outsz, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
	    c ? SSL_CIPHER_get_name(c) : "none", bits, alg);
}
