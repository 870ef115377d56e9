/*
 * Fuzz harness for the queue's configuration encoding (src/queue/qconf.c):
 * any bytes are parsed; what parses is encoded again, and that encoding
 * must parse to the same hostname, domains and table sizes, and resolve
 * a few names without trouble.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/qconf.h"
#include "server/resolve.h"
#include "server/table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
resolve_some(const struct config *cfg)
{
	static const char *names[] = { "a", "postmaster", "x+y", "info" };
	struct rcpt_dest out[RESOLVE_MAX_DEST];
	struct smtp_path p;
	size_t i, n;

	if (cfg->ndomains == 0)
		return;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		memset(&p, 0, sizeof(p));
		memcpy(p.local, names[i], strlen(names[i]) + 1);
		memcpy(p.domain, cfg->domains[0].name, strlen(cfg->domains[0].name) + 1);
		n = 0;
		if (resolve_rcpt(cfg, &p, 0, out, RESOLVE_MAX_DEST, &n) == RESOLVE_OK &&
		    (n == 0 || n > RESOLVE_MAX_DEST))
			abort();
	}
}

static void
same(const struct config *a, const struct config *b)
{
	size_t i;

	if (strcmp(a->hostname, b->hostname) != 0 || a->ndomains != b->ndomains ||
	    a->lifetime != b->lifetime || a->limits.message_size != b->limits.message_size)
		abort();
	for (i = 0; i < a->ndomains; i++)
		if (strcmp(a->domains[i].name, b->domains[i].name) != 0 ||
		    (a->domains[i].users == NULL) != (b->domains[i].users == NULL) ||
		    table_count(a->domains[i].users) != table_count(b->domains[i].users) ||
		    table_count(a->domains[i].aliases) != table_count(b->domains[i].aliases))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config a, b;
	struct buf enc;
	char err[256];

	if (qconf_parse((const char *)data, size, &a, err, sizeof(err)) == -1) {
		if (strncmp(err, "byte ", 5) != 0)
			abort();
		config_free(&a);
		return 0;
	}
	resolve_some(&a);
	buf_init(&enc, QCONF_MAX);
	if (qconf_encode(&a, &enc) == -1 ||
	    qconf_parse(enc.data, enc.len, &b, err, sizeof(err)) == -1)
		abort();
	same(&a, &b);
	buf_free(&enc);
	config_free(&a);
	config_free(&b);
	return 0;
}
