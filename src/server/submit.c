/* submit — sender ownership and header facts for submission (see submit.h). */
#include "server/submit.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "server/resolve.h"
#include "smtp/parse.h"

/* Splits "user@domain" (or "user" of the first domain) into its parts. */
static int
login_parts(const struct config *cfg, const char *login, char *user, size_t usz,
    char *dom, size_t dsz)
{
	const char *at = strrchr(login, '@');
	size_t n = at ? (size_t)(at - login) : strlen(login);

	if (n == 0 || n >= usz || cfg->ndomains == 0)
		return -1;
	memcpy(user, login, n);
	user[n] = '\0';
	snprintf(dom, dsz, "%s", at ? at + 1 : cfg->domains[0].name);
	return 0;
}

static int
listed_sender(const struct config *cfg, const char *login, const char *addr)
{
	const char *list, *p, *at = strrchr(addr, '@');

	if (cfg->auth.senders == NULL ||
	    (list = table_lookup(cfg->auth.senders, login, strlen(login))) == NULL)
		return 0;
	for (p = list; *p; ) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		/* "*@domain" owns every address of the domain. */
		if ((n == strlen(addr) && strncasecmp(p, addr, n) == 0) ||
		    (n > 2 && p[0] == '*' && p[1] == '@' && at && n - 1 == strlen(at) &&
		    strncasecmp(p + 1, at, n - 1) == 0))
			return 1;
		p += n + (e != NULL);
	}
	return 0;
}

int
submit_owns(const struct config *cfg, const char *login, const char *addr)
{
	char user[SMTP_LOCAL_MAX + 1], dom[SMTP_DOMAIN_MAX + 1];
	struct rcpt_dest dest[RESOLVE_MAX_DEST];
	struct smtp_mailarg a;
	char wrapped[SMTP_PATH_MAX + 8];
	size_t n = 0, i;

	if (login_parts(cfg, login, user, sizeof(user), dom, sizeof(dom)) == -1)
		return 0;
	if (listed_sender(cfg, login, addr))
		return 1;
	snprintf(wrapped, sizeof(wrapped), "TO:<%s>", addr);
	if (smtp_parse_mailarg(wrapped, strlen(wrapped), "TO:", &a, NULL) != SMTP_PARSE_OK)
		return 0;
	/* The login's own mailbox, directly, with a +tag, or through an alias. */
	if (resolve_rcpt(cfg, &a.path, 0, dest, RESOLVE_MAX_DEST, &n) != RESOLVE_OK)
		return 0;
	for (i = 0; i < n; i++)
		if (dest[i].kind == DEST_LOCAL && strcasecmp(dest[i].user, user) == 0 &&
		    strcasecmp(dest[i].domain, dom) == 0)
			return 1;
	return 0;
}

/* ---- headers ---- */

/* Length of the field starting at p (through its CRLF, folded lines included). */
static size_t
field_len(const char *p, size_t len)
{
	size_t i = 0;

	for (;;) {
		while (i < len && p[i] != '\n')
			i++;
		if (i >= len)
			return len;
		i++;
		if (i >= len || (p[i] != ' ' && p[i] != '\t'))
			return i;
	}
}

static int
field_is(const char *p, size_t n, const char *name)
{
	size_t k = strlen(name);

	return n > k && strncasecmp(p, name, k) == 0 && p[k] == ':';
}

typedef void addr_cb(void *arg, const char *p, size_t n);

static void
add_addr(void *arg, const char *p, size_t n)
{
	struct submit_headers *h = arg;

	if (n == 0)
		return;
	if (h->naddr < SUBMIT_FROM_MAX && n < sizeof(h->from[0]) && memchr(p, '@', n)) {
		memcpy(h->from[h->naddr], p, n);
		h->from[h->naddr][n] = '\0';
	} else
		h->from_bad = 1;
	h->naddr++;
}

/* Trims blanks, then hands a non-empty address to cb. */
static void
emit_addr(addr_cb *cb, void *arg, const char *p, size_t n)
{
	while (n && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n)
		cb(arg, p, n);
}

/*
 * RFC 5322 3.4 address-list, loosely: "Name <a@b>, c@d (comment)". Text in
 * quotes and comments is skipped; an angle-addr wins over the bare words.
 */
static void
scan_list(const char *v, size_t n, addr_cb *cb, void *arg)
{
	size_t i, lt = 0, depth = 0;
	int quoted = 0, angle = 0, got_angle = 0;
	char bare[320];
	size_t blen = 0;

	for (i = 0; i <= n; i++) {
		char c = i < n ? v[i] : ',';

		if (quoted) {
			if (c == '\\')
				i++;
			else if (c == '"')
				quoted = 0;
			continue;
		}
		if (depth) {
			if (c == '\\')
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '"' && !angle) {
			quoted = 1;
			blen = 0;
		} else if (c == '(')
			depth = 1;
		else if (c == '<') {
			angle = 1;
			lt = i + 1;
		} else if (c == '>' && angle) {
			emit_addr(cb, arg, v + lt, i - lt);
			angle = 0;
			got_angle = 1;
		} else if (c == ':' && !angle)
			blen = 0;	/* a group's display name */
		else if ((c == ',' || c == ';') && !angle) {
			if (!got_angle && blen)
				emit_addr(cb, arg, bare, blen);
			got_angle = 0;
			blen = 0;
		} else if (!angle && c != '\r' && c != '\n' && blen < sizeof(bare))
			bare[blen++] = c;
	}
}

void
submit_field_addresses(const char *hdr, size_t len, const char *name,
    void (*cb)(void *arg, const char *addr, size_t n), void *arg)
{
	size_t off = 0, k = strlen(name);

	while (off < len) {
		const char *p = hdr + off;
		size_t n = field_len(p, len - off);

		if (n <= 2 && (p[0] == '\r' || p[0] == '\n'))
			break;
		if (field_is(p, n, name))
			scan_list(p + k + 1, n - k - 1, cb, arg);
		off += n;
	}
}

void
submit_scan_headers(const char *hdr, size_t len, struct submit_headers *out)
{
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	while (off < len) {
		const char *p = hdr + off;
		size_t n = field_len(p, len - off);

		if (n <= 2 && (p[0] == '\r' || p[0] == '\n'))
			break;	/* the empty line */
		if (field_is(p, n, "From")) {
			out->nfrom++;
			scan_list(p + 5, n - 5, add_addr, out);
		} else if (field_is(p, n, "Date"))
			out->has_date = 1;
		else if (field_is(p, n, "Message-ID"))
			out->has_message_id = 1;
		off += n;
	}
}
