/* signer — DKIM signing of outbound mail (see signer.h). */
#include "deliver/signer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "queue/envelope.h"

#define SIGNER_CHUNK (64 * 1024)

/* The keys of one signing domain (one or two: dual signing). */
struct signer_domain {
	char               domain[CONFIG_NAME_MAX + 1];
	struct dkim_key   *key[2];
	char               selector[2][CONFIG_DKIM_SELECTOR_MAX + 1];
	size_t             nkeys;
};

struct signer {
	struct signer_domain *d;
	size_t                n;
	enum dkim_canon       hcanon, bcanon;
	char                 *names;	/* dkim_headers with ':' made NUL */
	const char          **headers;	/* into names, NULL-terminated; NULL: the default */
};

static struct signer_domain *
find_domain(struct signer *s, const char *domain)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcasecmp(s->d[i].domain, domain) == 0)
			return &s->d[i];
	return NULL;
}

/* The configured header list "A:B:C" as a NULL-terminated array. */
static int
split_headers(struct signer *s, const char *list)
{
	size_t i, n = 1, k = 0, len = strlen(list);

	for (i = 0; i < len; i++)
		n += list[i] == ':';
	if ((s->names = strdup(list)) == NULL ||
	    (s->headers = calloc(n + 1, sizeof(*s->headers))) == NULL)
		return -1;
	s->headers[k++] = s->names;
	for (i = 0; i < len; i++)
		if (s->names[i] == ':') {
			s->names[i] = '\0';
			s->headers[k++] = s->names + i + 1;
		}
	return 0;
}

struct signer *
signer_new(const struct config *cfg, char *err, size_t errlen)
{
	struct signer *s = calloc(1, sizeof(*s));
	size_t i;

	if (s == NULL || (cfg->ndkim && (s->d = calloc(cfg->ndkim, sizeof(*s->d))) == NULL) ||
	    (cfg->dkim_headers && split_headers(s, cfg->dkim_headers) == -1)) {
		snprintf(err, errlen, "%s: out of memory", cfg->path);
		signer_free(s);
		return NULL;
	}
	s->hcanon = cfg->dkim_hcanon ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED;
	s->bcanon = cfg->dkim_bcanon ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED;
	for (i = 0; i < cfg->ndkim; i++) {
		const struct dkim_sign_cfg *k = &cfg->dkim[i];
		struct signer_domain *d = find_domain(s, k->domain);
		struct dkim_key *key;
		char why[256];

		if ((key = dkim_key_load(k->keyfile, why, sizeof(why))) == NULL) {
			snprintf(err, errlen, "%s:%d: dkim_sign: %s: %s", cfg->path, k->line,
			    k->keyfile, why);
			signer_free(s);
			return NULL;
		}
		if (d == NULL) {
			d = &s->d[s->n++];
			snprintf(d->domain, sizeof(d->domain), "%s", k->domain);
		}
		d->key[d->nkeys] = key;	/* config.c allows two per domain */
		snprintf(d->selector[d->nkeys], sizeof(d->selector[0]), "%s", k->selector);
		d->nkeys++;
	}
	return s;
}

void
signer_free(struct signer *s)
{
	size_t i, k;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		for (k = 0; k < s->d[i].nkeys; k++)
			dkim_key_free(s->d[i].key[k]);
	free(s->d);
	free(s->headers);
	free(s->names);
	free(s);
}

int
signer_check(const struct config *cfg, char *err, size_t errlen)
{
	struct signer *s;

	if (cfg->ndkim == 0)
		return 0;
	if ((s = signer_new(cfg, err, errlen)) == NULL)
		return -1;
	signer_free(s);
	return 0;
}

int
signer_active(const struct signer *s)
{
	return s != NULL && s->n > 0;
}

int
signer_eligible(const char *proto, const char *client_addr)
{
	size_t n = strlen(proto), sl = strlen(ENVELOPE_PROTO_SUB);

	if (strcmp(client_addr, "local") == 0)
		return 1;
	/* Submission listeners take mail only with AUTH or from trusted_networks. */
	if (n > sl && strcmp(proto + n - sl, ENVELOPE_PROTO_SUB) == 0)
		return 1;
	/* RFC 3848 section 3: the "A" suffix means the client authenticated. */
	return n > 1 && proto[n - 1] == 'A';
}

/* pread of at most n bytes that stops at len (the content's end). */
static ssize_t
pread_upto(int fd, char *p, size_t n, off_t off, uint64_t len)
{
	if ((uint64_t)off >= len)
		return 0;
	if (len - (uint64_t)off < n)
		n = (size_t)(len - (uint64_t)off);
	return pread(fd, p, n, off);
}

/* The header section of the queue file (up to the empty line), for From:. */
static int
read_header(int fd, uint64_t len, struct buf *h)
{
	char chunk[8192];
	off_t off = 0;
	ssize_t n;

	while ((n = pread_upto(fd, chunk, sizeof(chunk), off, len)) > 0) {
		size_t from = h->len > 3 ? h->len - 3 : 0;

		if (buf_append(h, chunk, (size_t)n) == -1)
			return 0;	/* a huge header: From is in what we have, or nowhere */
		off += n;
		if (memmem(h->data + from, h->len - from, "\r\n\r\n", 4) != NULL)
			return 0;
	}
	return n < 0 ? -1 : 0;
}

/* Hashes the whole file and appends the signature field(s). */
static int
sign_file(struct signer *s, const struct signer_domain *d, int fd, uint64_t len, struct buf *out,
    char *why, size_t whysz)
{
	struct dkim_sign_opts o;
	struct dkim_sign *ds;
	struct buf sig;
	char chunk[SIGNER_CHUNK];
	off_t off = 0;
	ssize_t n;
	size_t i;
	int rc = -1;

	memset(&o, 0, sizeof(o));
	o.domain = d->domain;
	for (i = 0; i < d->nkeys; i++) {
		o.keys[i].key = d->key[i];
		o.keys[i].selector = d->selector[i];
	}
	o.nkeys = d->nkeys;
	o.hcanon = s->hcanon;
	o.bcanon = s->bcanon;
	o.headers = s->headers;
	if ((ds = dkim_sign_new(&o)) == NULL) {
		snprintf(why, whysz, "out of memory");
		return -1;
	}
	buf_init(&sig, SIGNER_CHUNK);
	while ((n = pread_upto(fd, chunk, sizeof(chunk), off, len)) > 0) {
		if (dkim_sign_feed(ds, chunk, (size_t)n) == -1)
			break;
		off += n;
	}
	if (n < 0)
		snprintf(why, whysz, "cannot read the message");
	else if (n > 0 || dkim_sign_finish(ds, &sig) == -1)
		snprintf(why, whysz, "%s", dkim_sign_error(ds));
	else if (buf_append(out, sig.data, sig.len) == -1)
		snprintf(why, whysz, "signature too large");
	else
		rc = 0;
	buf_free(&sig);
	dkim_sign_free(ds);
	return rc;
}

int
signer_sign(struct signer *s, int fd, uint64_t len, struct buf *out, char *dom, size_t domsz,
    char *why, size_t whysz)
{
	struct signer_domain *d = NULL;
	struct dmarc_from from;
	struct buf h;
	size_t i;

	if (!signer_active(s))
		return 0;
	buf_init(&h, DKIM_HEADER_MAX);
	if (read_header(fd, len, &h) == -1) {
		buf_free(&h);
		snprintf(why, whysz, "cannot read the message");
		return -1;
	}
	/* Several From domains (RFC 5322 3.6.2 allows a list): the first with keys. */
	memset(&from, 0, sizeof(from));
	(void)dmarc_from_domains(h.data, h.len, &from);
	buf_free(&h);
	for (i = 0; i < from.ndomains && d == NULL; i++)
		d = find_domain(s, from.domains[i]);
	if (d == NULL)
		return 0;
	snprintf(dom, domsz, "%s", d->domain);
	return sign_file(s, d, fd, len, out, why, whysz) == -1 ? -1 : 1;
}
