/*
 * Fuzz harness for config_parse: arbitrary bytes must be refused with a
 * "NAME:LINE: reason" error or parsed into a structure whose invariants
 * hold (NUL-terminated names, paths absolute, counts within limits).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct config *cfg)
{
	size_t i;

	if (cfg->nlisten == 0 || cfg->nlisten > CONFIG_MAX_LISTEN ||
	    cfg->ndomains == 0 || cfg->ndomains > CONFIG_MAX_DOMAINS ||
	    cfg->spool_dir[0] != '/' || cfg->chroot_dir[0] != '/' ||
	    cfg->workers < 0 || cfg->workers > 64 ||
	    cfg->limits.command_line < 512 || cfg->limits.recipients < 100)
		abort();
	for (i = 0; i < cfg->ndomains; i++) {
		const struct domain_cfg *d = &cfg->domains[i];

		if (d->maildir == NULL || d->maildir[0] != '/' ||
		    config_find_domain(cfg, d->name, strlen(d->name)) != d)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	char err[512];
	char *copy;

	/* An exact-size copy, so ASan catches a read past size. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	if (config_parse(copy, size, "fuzz.conf", "/etc/tern", &cfg, err,
	    sizeof(err)) == 0) {
		check(&cfg);
		config_free(&cfg);
	} else if (strncmp(err, "fuzz.conf:", 10) != 0 || cfg.domains != NULL) {
		abort();
	}
	free(copy);
	return 0;
}
