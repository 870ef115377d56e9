/* authcmd — ternctl dkim keygen / dkim verify / spf check / dmarc check (see authcmd.h). */
#include "cli/authcmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "daemon/config.h"
#include "dns/unbound.h"
#include "mailauth/authcheck.h"
#include "mailauth/dkim.h"
#include "mailauth/orgdomain.h"
#include "mailauth/spf.h"

#define DNS_TIMEOUT_MS  10000
#define MESSAGE_MAX     ((size_t)256 << 20)	/* dkim verify reads at most this */
#define SERVER_MAX      128

/* Exit codes (documented in ternctl's usage and docs/CONFIG.md). */
enum {
	XS_OK = 0, XS_FAIL = 1, XS_SOFTFAIL = 3, XS_NEUTRAL = 4, XS_NONE = 5,
	XS_TEMPERROR = 6, XS_PERMERROR = 7, XS_LOCAL = 8,
};

/* ---- options shared by the commands ---- */

enum { O_RESOLVER, O_TYPE, O_BITS, O_OUT, O_IP, O_HELO, O_MAILFROM, O_COUNT };

struct opts {
	const char *val[O_COUNT];	/* --resolver, --type, ..., --mail-from */
	char       *pos[4];		/* positional words */
	int         npos;
};

/* Splits argv into the known --options (each with a value) and positional words. */
static int
parse_opts(int argc, char **argv, const char *allowed, struct opts *o)
{
	static const char *const names[O_COUNT] = { "--resolver", "--type", "--bits", "--out",
	    "--ip", "--helo", "--mail-from" };
	int i, k;

	memset(o, 0, sizeof(*o));
	for (i = 0; i < argc; i++) {
		for (k = 0; k < O_COUNT; k++)
			if (strcmp(argv[i], names[k]) == 0)
				break;
		if (k == O_COUNT) {
			if (argv[i][0] == '-' && argv[i][1] == '-')
				return -1;
			if (o->npos == 4)
				return -1;
			o->pos[o->npos++] = argv[i];
			continue;
		}
		if (strchr(allowed, "rtboihm"[k]) == NULL || i + 1 == argc)
			return -1;
		o->val[k] = argv[++i];
	}
	return 0;
}

/*
 * --resolver HOST[:PORT] (or [IPv6]:PORT, or unbound's own ADDR@PORT) in
 * the form dns_unbound_new() takes: "ADDR" or "ADDR@PORT".
 */
static int
resolver_spec(const char *in, char *out, size_t outsz)
{
	const char *colon = strchr(in, ':'), *end;
	int n;

	if (in[0] == '[') {
		if ((end = strchr(in, ']')) == NULL || (end[1] != '\0' && end[1] != ':'))
			return -1;
		n = end[1] == ':' ? snprintf(out, outsz, "%.*s@%s", (int)(end - in - 1), in + 1,
		    end + 2) : snprintf(out, outsz, "%.*s", (int)(end - in - 1), in + 1);
	} else if (colon && strchr(colon + 1, ':') == NULL)
		n = snprintf(out, outsz, "%.*s@%s", (int)(colon - in), in, colon + 1);
	else
		n = snprintf(out, outsz, "%s", in);	/* a bare IPv6 address, or ADDR@PORT */
	return n > 0 && (size_t)n < outsz ? 0 : -1;
}

/* The resolver: --resolver, else the configuration's dns_server, else resolv.conf. */
static struct dns_unbound *
open_resolver(const char *conf, int conf_given, const char *opt)
{
	struct dns_unbound *u;
	struct config cfg;
	char server[SERVER_MAX] = "", err[1024];

	if (opt && resolver_spec(opt, server, sizeof(server)) == -1) {
		fprintf(stderr, "ternctl: --resolver: bad address \"%s\"\n", opt);
		return NULL;
	}
	if (opt == NULL) {
		if (config_load(conf, &cfg, err, sizeof(err)) == 0) {
			if (cfg.dns_server)
				snprintf(server, sizeof(server), "%s", cfg.dns_server);
			config_free(&cfg);
		} else if (conf_given) {
			fprintf(stderr, "ternctl: %s\n", err);
			return NULL;
		}
	}
	if ((u = dns_unbound_new(server[0] ? server : NULL, DNS_TIMEOUT_MS, err,
	    sizeof(err))) == NULL)
		fprintf(stderr, "ternctl: resolver: %s\n", err);
	return u;
}

/* ---- dkim keygen ---- */

/* Writes the private key, never over an existing file, readable by its owner only. */
static int
write_key(const char *path, const struct buf *pem)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	size_t off = 0;

	if (fd == -1) {
		fprintf(stderr, "ternctl: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (off < pem->len) {
		ssize_t n = write(fd, pem->data + off, pem->len - off);

		if (n <= 0) {
			fprintf(stderr, "ternctl: %s: %s\n", path, strerror(errno));
			close(fd);
			unlink(path);
			return -1;
		}
		off += (size_t)n;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fprintf(stderr, "ternctl: %s: %s\n", path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

/*
 * Prints the record in zone-file form, split into strings of at most 255
 * octets (RFC 1035 3.3.14; RFC 6376 3.6.2.2 joins them without spaces).
 */
static void
print_record(const char *domain, const char *selector, const struct buf *txt)
{
	size_t off;

	printf("%s._domainkey.%s. IN TXT", selector, domain);
	for (off = 0; off < txt->len; off += 255)
		printf(" \"%.*s\"", (int)(txt->len - off > 255 ? 255 : txt->len - off),
		    txt->data + off);
	printf("\n");
}

static int
dkim_keygen_cmd(int argc, char **argv)
{
	struct opts o;
	enum dkim_key_type type = DKIM_KEY_RSA;
	char path[4096], err[256];
	struct buf pem, txt;
	unsigned long bits = 0;
	int r = XS_FAIL;

	if (parse_opts(argc, argv, "tbo", &o) == -1 || o.npos != 2)
		return AUTHCMD_USAGE;
	if (o.val[O_TYPE] && strcmp(o.val[O_TYPE], "ed25519") == 0)
		type = DKIM_KEY_ED25519;
	else if (o.val[O_TYPE] && strcmp(o.val[O_TYPE], "rsa") != 0) {
		fprintf(stderr, "ternctl: --type: \"%s\" is neither rsa nor ed25519\n", o.val[O_TYPE]);
		return AUTHCMD_USAGE;
	}
	if (o.val[O_BITS]) {
		char *end;

		errno = 0;
		bits = strtoul(o.val[O_BITS], &end, 10);
		if (errno || *end || end == o.val[O_BITS] || bits < 1024 || bits > 8192 ||
		    type != DKIM_KEY_RSA) {
			fprintf(stderr, "ternctl: --bits: 1024 to 8192, and only for rsa\n");
			return AUTHCMD_USAGE;
		}
	}
	if (o.val[O_OUT])
		snprintf(path, sizeof(path), "%s", o.val[O_OUT]);
	else
		snprintf(path, sizeof(path), "%s.%s.key", o.pos[0], o.pos[1]);
	buf_init(&pem, 64 * 1024);
	buf_init(&txt, 64 * 1024);
	if (dkim_keygen(type, (unsigned)bits, &pem, &txt, err, sizeof(err)) == -1)
		fprintf(stderr, "ternctl: %s\n", err);
	else if (write_key(path, &pem) == 0) {
		fprintf(stderr, "ternctl: private key written to %s; publish this record:\n", path);
		print_record(o.pos[0], o.pos[1], &txt);
		r = XS_OK;
	}
	explicit_bzero(pem.data, pem.len);
	buf_free(&pem);
	buf_free(&txt);
	return r;
}

/* ---- dkim verify ---- */

/* The whole message, with bare LF line ends made CRLF (files on disk often have them). */
static int
read_message(const char *path, struct buf *out)
{
	char chunk[65536];
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	ssize_t n;
	char prev = '\0';

	if (fd == -1) {
		fprintf(stderr, "ternctl: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		ssize_t i;

		for (i = 0; i < n; i++) {
			if (chunk[i] == '\n' && prev != '\r' && buf_appendc(out, '\r') == -1)
				break;
			if (buf_appendc(out, chunk[i]) == -1)
				break;
			prev = chunk[i];
		}
		if (i < n) {
			fprintf(stderr, "ternctl: message larger than %zu octets\n", MESSAGE_MAX);
			n = -1;
			break;
		}
	}
	if (n < 0 && errno)
		fprintf(stderr, "ternctl: %s: %s\n", path ? path : "stdin", strerror(errno));
	if (path)
		close(fd);
	return n == 0 ? 0 : -1;
}

/* One signature's outcome, one line: "LABEL N: d= s= a= result= ...". */
static void
print_sig(const char *label, size_t i, const struct dkim_sig_result *s)
{
	printf("%s %zu: d=%s s=%s a=%s result=%s", label, i + 1, s->domain, s->selector,
	    s->algorithm, dkim_result_str(s->result));
	if (s->key_bits)
		printf(" bits=%u", s->key_bits);
	if (s->testing)
		printf(" testing=y");
	if (s->result != DKIM_PASS && s->reason[0])
		printf(" reason=\"%s\"", s->reason);
	printf("\n");
}

static int
dkim_verify_cmd(const char *conf, int conf_given, int argc, char **argv)
{
	struct dkim_verify_opts vo = { 0 };
	struct dkim_verify *v = NULL;
	struct dns_unbound *u;
	struct dns_resolver r;
	struct opts o;
	struct buf msg;
	size_t i, n, pass = 0;
	int rc = XS_LOCAL;

	if (parse_opts(argc, argv, "r", &o) == -1 || o.npos > 1)
		return AUTHCMD_USAGE;
	buf_init(&msg, MESSAGE_MAX);
	if (read_message(o.npos ? o.pos[0] : NULL, &msg) == -1) {
		buf_free(&msg);
		return XS_LOCAL;
	}
	if ((u = open_resolver(conf, conf_given, o.val[O_RESOLVER])) == NULL)
		goto out;
	r = dns_unbound_resolver(u);
	if ((v = dkim_verify_new(&vo)) == NULL || dkim_verify_feed(v, msg.data, msg.len) == -1 ||
	    dkim_verify_finish(v, &r) == -1) {
		fprintf(stderr, "ternctl: the message cannot be checked (header section too large?)\n");
		goto out;
	}
	n = dkim_verify_count(v);
	if (n == 0)
		printf("no DKIM-Signature\n");
	for (i = 0; i < n; i++) {
		const struct dkim_sig_result *s = dkim_verify_result(v, i);

		print_sig("signature", i, s);
		pass += s->result == DKIM_PASS;
	}
	rc = pass ? XS_OK : XS_FAIL;
out:
	dkim_verify_free(v);
	dns_unbound_free(u);
	buf_free(&msg);
	return rc;
}

int
authcmd_dkim(const char *conf, int conf_given, int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "keygen") == 0)
		return dkim_keygen_cmd(argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "verify") == 0)
		return dkim_verify_cmd(conf, conf_given, argc - 1, argv + 1);
	return AUTHCMD_USAGE;
}

/* ---- spf check ---- */

static int
spf_exit(enum spf_result r)
{
	switch (r) {
	case SPF_PASS: return XS_OK;
	case SPF_FAIL: return XS_FAIL;
	case SPF_SOFTFAIL: return XS_SOFTFAIL;
	case SPF_NEUTRAL: return XS_NEUTRAL;
	case SPF_NONE: return XS_NONE;
	case SPF_TEMPERROR: return XS_TEMPERROR;
	case SPF_PERMERROR: return XS_PERMERROR;
	}
	return XS_LOCAL;
}

static void
print_outcome(const char *identity, const char *who, const struct spf_outcome *o)
{
	printf("%s: %s\n", identity, spf_result_str(o->result));
	printf("  identity: %s (domain %s)\n", who, o->domain);
	if (o->record[0])
		printf("  record: %s\n", o->record);
	if (o->mechanism[0])
		printf("  mechanism: %s\n", o->mechanism);
	if (o->explanation[0])
		printf("  explanation: %s\n", o->explanation);
	if (o->problem[0])
		printf("  problem: %s\n", o->problem);
	printf("  lookups: %u (void %u)\n", o->dns_lookups, o->void_lookups);
}

int
authcmd_spf(const char *conf, int conf_given, int argc, char **argv)
{
	struct spf_request req = { 0 };
	struct spf_outcome mf, helo;
	struct dns_unbound *u;
	struct dns_resolver r;
	struct opts o;
	char who[400];
	const char *sender;

	if (argc < 1 || strcmp(argv[0], "check") != 0 ||
	    parse_opts(argc - 1, argv + 1, "r", &o) == -1 || o.npos != 3)
		return AUTHCMD_USAGE;
	if (spf_request_set_ip(&req, o.pos[0]) == -1) {
		fprintf(stderr, "ternctl: \"%s\" is not an IP address\n", o.pos[0]);
		return AUTHCMD_USAGE;
	}
	/* "<>" or "" is the null sender: the HELO identity stands for it (RFC 7208 2.4). */
	sender = strcmp(o.pos[2], "<>") == 0 ? "" : o.pos[2];
	req.helo = o.pos[1];
	req.sender = sender;
	if ((u = open_resolver(conf, conf_given, o.val[O_RESOLVER])) == NULL)
		return XS_LOCAL;
	r = dns_unbound_resolver(u);
	spf_check_helo(&r, &req, &helo);
	spf_check_mailfrom(&r, &req, &mf);
	dns_unbound_free(u);
	snprintf(who, sizeof(who), "%s", sender[0] ? sender : "<> (postmaster@HELO)");
	print_outcome("mailfrom", who, &mf);
	snprintf(who, sizeof(who), "postmaster@%s", o.pos[1]);
	print_outcome("helo", who, &helo);
	return spf_exit(mf.result);
}

/* ---- dmarc check ---- */

struct names {
	char authserv_id[256];
	char host[256];
};

/* The authserv-id and host name the daemon would use: the configuration's, else this host's. */
static int
local_names(const char *conf, int conf_given, struct names *n)
{
	struct config cfg;
	char err[1024];

	if (config_load(conf, &cfg, err, sizeof(err)) == 0) {
		snprintf(n->authserv_id, sizeof(n->authserv_id), "%s", config_authserv_id(&cfg));
		snprintf(n->host, sizeof(n->host), "%s", cfg.hostname);
		config_free(&cfg);
		return 0;
	}
	if (conf_given) {
		fprintf(stderr, "ternctl: %s\n", err);
		return -1;
	}
	if (gethostname(n->host, sizeof(n->host) - 1) == -1 || n->host[0] == '\0')
		snprintf(n->host, sizeof(n->host), "localhost");
	n->host[sizeof(n->host) - 1] = '\0';
	snprintf(n->authserv_id, sizeof(n->authserv_id), "%s", n->host);
	return 0;
}

/* Length of the header section with its empty separator line (all of msg without one). */
static size_t
header_len(const struct buf *msg)
{
	size_t i;

	if (msg->data == NULL)
		return 0;
	if (msg->len >= 2 && msg->data[0] == '\r' && msg->data[1] == '\n')
		return 2;
	for (i = 0; i + 4 <= msg->len; i++)
		if (memcmp(msg->data + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	return msg->len;
}

/* Body verdicts per signature, as the smtp worker computes them while the message streams. */
static int
body_verdicts(const struct buf *msg, uint8_t *out, size_t *n)
{
	struct dkim_verify_opts vo = { 0 };
	struct dkim_verify *v;
	int k = -1;

	if ((v = dkim_verify_new(&vo)) != NULL && dkim_verify_feed(v, msg->data, msg->len) == 0)
		k = dkim_verify_bodies(v, out, DKIM_MAX_SIGS);
	dkim_verify_free(v);
	if (k < 0)
		return -1;
	*n = (size_t)k;
	return 0;
}

/* ARC's body hashes (RFC 8617), as the smtp worker computes them. */
static int
arc_hashes(const struct buf *msg, size_t hlen, unsigned char *out)
{
	struct arc_body *b = arc_body_new();
	int rc = -1;

	if (b != NULL) {
		arc_body_feed(b, msg->data + hlen, msg->len - hlen);
		rc = arc_body_finish(b, out);
	}
	arc_body_free(b);
	return rc;
}

/* dkim_aligned_set has a bit for each signature authcheck keeps. */
_Static_assert(DKIM_MAX_SIGS <= 32, "dkim_aligned_set holds 32 signatures");

static const char *
align_mode(enum dmarc_align a)
{
	return a == DMARC_ALIGN_STRICT ? "strict" : "relaxed";
}

static const char *
align_word(int pass, int aligned)
{
	return !pass ? "does not count (not pass)" : aligned ? "aligned" : "not aligned";
}

/* RFC 7489 6.6.3 and 3.1: where the policy came from, and how each identifier aligned. */
static void
print_dmarc(const struct authcheck_result *r, int null_sender)
{
	const struct dmarc_outcome *dm = &r->dmarc;
	const struct dmarc_record *rec = &dm->record;
	size_t i;

	printf("dmarc: %s\n", dmarc_result_str(dm->result));
	if (dm->header_from[0])
		printf("  from domain: %s\n", dm->header_from);
	if (dm->policy_domain[0]) {
		printf("  record: _dmarc.%s (%s): %s\n", dm->policy_domain,
		    dm->at_org ? "organizational domain" : "From domain", dm->record_txt);
		printf("  policy: %s (p=%s sp=%s pct=%d; %s)\n", dmarc_policy_str(dm->policy),
		    dmarc_policy_str(rec->p), dmarc_policy_str(rec->sp), rec->pct,
		    dm->at_org ? "sp= applies below the organizational domain" :
		    "p= applies to the From domain");
	} else if (dm->result != DMARC_RESULT_PERMERROR)
		printf("  record: none\n");
	if (dm->header_from[0]) {
		printf("  spf alignment: %s, %s domain %s, spf %s: %s\n", align_mode(rec->aspf),
		    null_sender ? "helo" : "mailfrom", r->dmarc_spf_domain,
		    spf_result_str(r->spf.result),
		    align_word(r->spf.result == SPF_PASS, dm->spf_aligned));
		for (i = 0; i < r->ndkim && i < DKIM_MAX_SIGS; i++)
			printf("  dkim alignment: %s, signature %zu d=%s, dkim %s: %s\n",
			    align_mode(rec->adkim), i + 1, r->dkim[i].domain,
			    dkim_result_str(r->dkim[i].result),
			    align_word(r->dkim[i].result == DKIM_PASS,
			    (dm->dkim_aligned_set >> i) & 1));
		if (r->ndkim == 0)
			printf("  dkim alignment: no signature\n");
	}
	printf("  disposition: %s%s\n", dmarc_policy_str(dm->disposition),
	    dm->sampled_out ? " (pct sampled out)" : "");
	if (dm->reason[0])
		printf("  reason: %s\n", dm->reason);
}

static int
dmarc_exit(enum dmarc_result r)
{
	switch (r) {
	case DMARC_RESULT_PASS: return XS_OK;
	case DMARC_RESULT_FAIL: return XS_FAIL;
	case DMARC_RESULT_NONE: return XS_NONE;
	case DMARC_RESULT_TEMPERROR: return XS_TEMPERROR;
	case DMARC_RESULT_PERMERROR: return XS_PERMERROR;
	}
	return XS_LOCAL;
}

static void
print_result(const struct authcheck_request *rq, const struct authcheck_result *r)
{
	char who[400];
	size_t i;

	snprintf(who, sizeof(who), "%s", rq->mailfrom[0] ? rq->mailfrom : "<> (postmaster@HELO)");
	print_outcome("spf mailfrom", who, &r->spf);
	snprintf(who, sizeof(who), "postmaster@%s", rq->helo);
	print_outcome("spf helo", who, &r->helo);
	if (r->ndkim == 0)
		printf("dkim: no DKIM-Signature\n");
	for (i = 0; i < r->ndkim; i++)
		print_sig("dkim signature", i, &r->dkim[i]);
	if (r->arc.cv != ARC_NONE)
		printf("arc: %s, %u instance(s) (%s)\n", arc_cv_str(r->arc.cv), r->arc.n,
		    r->arc.reason);
	print_dmarc(r, rq->mailfrom[0] == '\0');
	/* The field as the daemon prepends it, its folding kept. */
	for (i = 0; i < r->header.len; i++)
		if (r->header.data[i] != '\r')
			putchar(r->header.data[i]);
}

/* "<>" or "" is the null sender; "<addr>" is taken as addr. */
static const char *
bare_sender(const char *in, char *out, size_t outsz)
{
	size_t n = strlen(in);

	if (n >= 2 && in[0] == '<' && in[n - 1] == '>')
		snprintf(out, outsz, "%.*s", (int)(n - 2), in + 1);
	else
		snprintf(out, outsz, "%s", in);
	return out;
}

static int
dmarc_run(const struct dns_resolver *dns, const struct authcheck_request *in,
    const struct buf *msg)
{
	struct authcheck_request q = *in, *rq = &q;
	struct authcheck_result *r;
	struct orgdomain *od;
	uint8_t body[DKIM_MAX_SIGS];
	unsigned char arc[ARC_BODY_HASHES];
	int rc = XS_LOCAL;

	if (body_verdicts(msg, body, &q.nbody) == -1) {
		fprintf(stderr, "ternctl: the message cannot be checked (header section too large?)\n");
		return XS_LOCAL;
	}
	q.body = body;
	q.hdr = msg->data ? msg->data : "";
	q.hdrlen = header_len(msg);
	if (msg->data != NULL && arc_hashes(msg, q.hdrlen, arc) == 0)
		q.arc = arc;
	if ((od = orgdomain_open(NULL)) == NULL || (r = malloc(sizeof(*r))) == NULL) {
		orgdomain_close(od);
		fprintf(stderr, "ternctl: out of memory\n");
		return XS_LOCAL;
	}
	if (authcheck_run(dns, od, rq, r) == 0) {
		print_result(rq, r);
		rc = dmarc_exit(r->dmarc.result);
		authcheck_result_free(r);
	} else
		fprintf(stderr, "ternctl: out of memory\n");
	free(r);
	orgdomain_close(od);
	return rc;
}

int
authcmd_dmarc(const char *conf, int conf_given, int argc, char **argv)
{
	struct authcheck_request rq = { 0 };
	struct spf_request probe = { 0 };
	struct dns_unbound *u;
	struct dns_resolver r;
	struct names names;
	struct opts o;
	struct buf msg;
	char sender[1024];
	int rc = XS_LOCAL;

	if (argc < 1 || strcmp(argv[0], "check") != 0 ||
	    parse_opts(argc - 1, argv + 1, "rihm", &o) == -1 || o.npos > 1 ||
	    !o.val[O_IP] || !o.val[O_HELO] || !o.val[O_MAILFROM])
		return AUTHCMD_USAGE;
	if (spf_request_set_ip(&probe, o.val[O_IP]) == -1) {
		fprintf(stderr, "ternctl: \"%s\" is not an IP address\n", o.val[O_IP]);
		return AUTHCMD_USAGE;
	}
	if (local_names(conf, conf_given, &names) == -1)
		return XS_LOCAL;
	rq.ip = o.val[O_IP];
	rq.helo = o.val[O_HELO];
	rq.mailfrom = bare_sender(o.val[O_MAILFROM], sender, sizeof(sender));
	rq.authserv_id = names.authserv_id;
	rq.receiver = names.host;
	/* pct_roll 0: the message is always sampled in unless pct=0 (RFC 7489 6.6.4). */
	rq.pct_roll = 0;
	buf_init(&msg, MESSAGE_MAX);
	if (read_message(o.npos ? o.pos[0] : NULL, &msg) == 0 &&
	    (u = open_resolver(conf, conf_given, o.val[O_RESOLVER])) != NULL) {
		r = dns_unbound_resolver(u);
		rc = dmarc_run(&r, &rq, &msg);
		dns_unbound_free(u);
	}
	buf_free(&msg);
	return rc;
}
