/*
 * Fuzz harness for src/dns/rr.c: arbitrary bytes as a DNS response
 * (dns_parse_msg for every type tern asks), as RDATA on its own
 * (dns_parse_rdata) and as a name (dns_parse_name). Whatever decodes must
 * hold up: lengths agree with the data, names are short and lower case.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "dns/rr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const enum dns_type types[] = {
	DNS_T_A, DNS_T_AAAA, DNS_T_MX, DNS_T_TXT, DNS_T_PTR, DNS_T_CNAME, DNS_T_TLSA,
};

static void
check_name(const char *s, size_t len)
{
	size_t i;

	if (len > 253 || strlen(s) != len)
		abort();
	for (i = 0; i < len; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			abort();
}

static void
check_rr(const struct dns_rr *rr, enum dns_type t)
{
	if (rr->type != t)
		abort();
	switch (t) {
	case DNS_T_MX:
	case DNS_T_PTR:
	case DNS_T_CNAME:
		check_name(rr->data, rr->len);
		break;
	case DNS_T_TXT:
	case DNS_T_TLSA:
		if (rr->data == NULL || rr->data[rr->len] != '\0')
			abort();
		break;
	default:
		if (rr->data != NULL)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[DNS_NAME_MAX + 1];
	struct dns_answer a;
	struct dns_rr rr;
	uint8_t *copy;
	size_t i, j, next;

	/* An exact-size copy, so ASan catches a read past size. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (dns_parse_msg(copy, size, types[i], &a) == -1)
			abort();
		if ((a.status == DNS_OK) != (a.n > 0))
			abort();
		check_name(a.canon, strlen(a.canon));
		for (j = 0; j < a.n; j++)
			check_rr(&a.rrs[j], types[i]);
		dns_answer_free(&a);
		if (dns_parse_rdata(types[i], copy, size, NULL, 0, &rr) == 0) {
			check_rr(&rr, types[i]);
			free(rr.data);
		} else if (rr.data != NULL)
			abort();
	}
	if (dns_parse_name(copy, size, 0, name, &next) != -1 && (next > size || next == 0))
		abort();
	free(copy);
	return 0;
}
