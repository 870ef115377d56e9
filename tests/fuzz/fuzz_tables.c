/*
 * Fuzz harness for the table parsers and recipient resolution: the same
 * bytes are parsed as a passwd-file and as an aliases(5) file; a table
 * that loads is queried and, for aliases, used to resolve a few names
 * through resolve_rcpt (loops, depth and fan-out must stay bounded).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"
#include "server/resolve.h"
#include "server/table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char conf[] =
    "listen 127.0.0.1:2525\n"
    "domain a.test { maildir /m/%u; catchall c }\n"
    "domain b.test { maildir /m/%u }\n";

static const char *names[] = {
	"a", "b", "c", "x", "root", "postmaster", "a+b", "bob", "\"a b\"",
};

static void
resolve_all(struct table *aliases, struct table *users)
{
	struct rcpt_dest out[RESOLVE_MAX_DEST];
	struct smtp_path p;
	struct config cfg;
	const char *d;
	char err[256];
	size_t i, j, n;

	if (config_parse(conf, sizeof(conf) - 1, "f", "/", &cfg, err,
	    sizeof(err)) == -1)
		abort();
	cfg.domains[0].aliases = aliases;
	cfg.domains[0].users = users;
	cfg.domains[1].aliases = aliases;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		memset(&p, 0, sizeof(p));
		memcpy(p.local, names[i], strlen(names[i]) + 1);
		d = i & 1 ? "a.test" : "B.test.";
		memcpy(p.domain, d, strlen(d) + 1);
		n = 99;
		if (resolve_rcpt(&cfg, &p, 0, out, RESOLVE_MAX_DEST, &n) ==
		    RESOLVE_OK) {
			if (n == 0 || n > RESOLVE_MAX_DEST)
				abort();
			for (j = 0; j < n; j++)
				if (memchr(out[j].addr, '\0', sizeof(out[j].addr)) == NULL)
					abort();
		} else if (n != 0) {
			abort();
		}
	}
	cfg.domains[0].aliases = cfg.domains[1].aliases = NULL;
	cfg.domains[0].users = NULL;
	config_free(&cfg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct table *pw, *al;
	char err[512];
	char *copy;

	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	pw = table_parse_passwd(copy, size, "t", err, sizeof(err));
	if (pw == NULL && strncmp(err, "t:", 2) != 0)
		abort();
	al = table_parse_aliases(copy, size, "t", err, sizeof(err));
	if (al == NULL && strncmp(err, "t:", 2) != 0)
		abort();
	if (pw)
		(void)table_lookup(pw, copy, size < 16 ? size : 16);
	if (al)
		resolve_all(al, pw);
	table_free(pw);
	table_free(al);
	free(copy);
	return 0;
}
