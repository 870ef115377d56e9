/*
 * Fuzz harness for ARC (src/mailauth/arc.c): the input is a message.
 *   - arc_verify() against a static zone holding the ARC suite's test key
 *     (dummy._domainkey.example.org, so the seed chains verify) and a key
 *     made at start (fuzz._domainkey.example.org); the result must be
 *     coherent (pass: 1 <= oldest-pass <= n <= 50).
 *   - arc_seal() with the made key; a first seal (no ARC set before) must
 *     then validate as pass with one instance (unless the input starts
 *     with WSP, which would fold into the prepended fields).
 *   - arc_verify_header() over the header section and the body's streamed
 *     hashes must agree with arc_verify() over the whole message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "mailauth/arc.h"
#include "mailauth/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char suite_key[] =
    "dummy._domainkey.example.org TXT \"v=DKIM1; k=rsa; "
    "p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY"
    "/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLz"
    "BfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\"";

static struct dns_static *zone;
static struct dkim_key *key;

static void
setup(void)
{
	struct buf pem, txt, line;
	char err[128];

	buf_init(&pem, 1 << 16);
	buf_init(&txt, 1 << 16);
	buf_init(&line, 1 << 16);
	if ((zone = dns_static_new()) == NULL ||
	    dns_static_add(zone, suite_key, err, sizeof(err)) == -1 ||
	    dkim_keygen(DKIM_KEY_RSA, 1024, &pem, &txt, err, sizeof(err)) == -1 ||
	    (key = dkim_key_parse(pem.data, pem.len, err, sizeof(err))) == NULL ||
	    buf_printf(&line, "fuzz._domainkey.example.org TXT \"%.*s\"", (int)txt.len,
	    txt.data) == -1 || buf_appendc(&line, '\0') == -1 ||
	    dns_static_add(zone, line.data, err, sizeof(err)) == -1)
		abort();
	buf_free(&pem);
	buf_free(&txt);
	buf_free(&line);
}

static void
check(const struct arc_result *r)
{
	if (r->cv > ARC_FAIL || r->n > ARC_MAX_INSTANCE)
		abort();
	if (r->cv == ARC_PASS && (r->n == 0 || r->oldest_pass == 0 || r->oldest_pass > r->n))
		abort();
	if (r->cv == ARC_NONE && r->n != 0)
		abort();
}

/*
 * The check process's way: the header section as the smtp session splits
 * it (a first empty line, or up to the first blank line) and the body's
 * hashes streamed. Must report what the whole-message check reported.
 */
static void
check_header_only(const uint8_t *data, size_t size, const struct dns_resolver *res,
    const struct arc_result *whole)
{
	const uint8_t *sep = memmem(data, size, "\r\n\r\n", 4);
	size_t hlen = size >= 2 && data[0] == '\r' && data[1] == '\n' ? 2 :
	    sep ? (size_t)(sep - data) + 4 : size;
	unsigned char bh[ARC_BODY_HASHES];
	struct arc_body *b = arc_body_new();
	struct arc_result r;

	if (b == NULL)
		abort();
	arc_body_feed(b, (const char *)data + hlen, size - hlen);
	if (arc_body_finish(b, bh) == -1)
		abort();
	arc_body_free(b);
	if (arc_verify_header((const char *)data, hlen, bh, res, NULL, &r) == 0 &&
	    (r.cv != whole->cv || r.n != whole->n || r.oldest_pass != whole->oldest_pass))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const hdrs[] = { "From", "To", "Subject", "Date", NULL };
	struct arc_seal_opts o;
	struct arc_result r, r2;
	struct dns_resolver res;
	struct buf out;
	char err[128];
	int rc;

	if (zone == NULL)
		setup();
	res = dns_static_resolver(zone);
	if (arc_verify((const char *)data, size, &res, NULL, &r) == 0) {
		check(&r);
		check_header_only(data, size, &res, &r);
	}
	memset(&o, 0, sizeof(o));
	o.domain = "example.org";
	o.selector = "fuzz";
	o.key = key;
	o.timestamp = 1700000000;
	o.authserv_id = "mx.example.org";
	o.results = "spf=pass smtp.mailfrom=a@example.org";
	o.headers = hdrs;
	buf_init(&out, 1 << 22);
	rc = arc_seal(&o, (const char *)data, size, &res, &out, err, sizeof(err));
	/* A message starting with WSP would continue the prepended AAR: not a
	 * message (RFC 5322 2.2), no promise there. */
	if (rc == 0 && r.cv == ARC_NONE && size > 0 && data[0] != ' ' && data[0] != '\t' &&
	    buf_append(&out, data, size) == 0 &&
	    arc_verify(out.data, out.len, &res, NULL, &r2) == 0) {
		check(&r2);
		if (r2.cv != ARC_PASS || r2.n != 1)
			abort();
	}
	buf_free(&out);
	return 0;
}
