/*
 * Fuzz harness for the DMARC parsers: dmarc_record_parse (the TXT record)
 * and dmarc_from_domains (a header block's From field). Arbitrary bytes
 * must be refused or parsed into values within their documented ranges.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dmarc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_record(const struct dmarc_record *r)
{
	size_t i;

	if (r->p > DMARC_POLICY_REJECT || r->sp > DMARC_POLICY_REJECT || r->pct < 0 ||
	    r->pct > 100 || r->nrua > DMARC_URI_MAX || r->nruf > DMARC_URI_MAX)
		abort();
	for (i = 0; i < r->nrua; i++)
		if (strlen(r->rua[i].uri) >= DMARC_URI_LEN || strchr(r->rua[i].uri, ':') == NULL)
			abort();
}

static void
check_from(const struct dmarc_from *f)
{
	size_t i;

	if (f->ndomains == 0 || f->ndomains > DMARC_FROM_MAX || f->naddrs < f->ndomains)
		abort();
	for (i = 0; i < f->ndomains; i++)
		if (f->domains[i][0] == '\0' || f->domains[i][0] == '.' ||
		    strlen(f->domains[i]) > DNS_NAME_MAX)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmarc_record r;
	struct dmarc_from f;
	char why[128], *copy;

	/* An exact-size copy, so ASan catches a read past size. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	if (dmarc_record_parse(copy, size, &r, why, sizeof(why)) == DMARC_REC_OK)
		check_record(&r);
	if (dmarc_from_domains(copy, size, &f) == DMARC_FROM_OK)
		check_from(&f);
	free(copy);
	return 0;
}
