/*
 * envelope — the text form of a queued message's envelope (see envelope.h).
 *
 * Every value goes through one escaping rule (put_value / unescape), so a
 * value can never forge a line or a field. The decoder is strict: it takes
 * exactly what the encoder writes (up to key order and needless escapes),
 * so that a damaged or hand-mangled file is refused rather than guessed at.
 */
#include "queue/envelope.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Keys of the text form; the order here is the order they are written. */
enum env_key {
	K_VERSION, K_ID, K_CREATED, K_SENDER, K_HELO, K_CLIENT, K_PROTO,
	K_BODY, K_SMTPUTF8, K_SIZE,
	K_RET, K_ENVID, K_NEXT, K_WARNED, K_DSNKIND,	/* version 2 */
	K_PREPEND, K_QUARANTINE,			/* version 3 */
	K_RCPT, K_END, K_NKEYS
};

static const char *const key_names[K_NKEYS] = {
	"version", "id", "created", "sender", "helo", "client", "proto",
	"body", "smtputf8", "size",
	"ret", "envid", "next_attempt", "warned", "dsn_kind",
	"prepend", "quarantine",
	"rcpt", "end",
};

/* Keys a version 1 file may not hold. */
#define V2_KEYS	((1u << K_RET) | (1u << K_ENVID) | (1u << K_NEXT) | \
    (1u << K_WARNED) | (1u << K_DSNKIND))
/* Keys versions 1 and 2 may not hold. */
#define V3_KEYS	((1u << K_PREPEND) | (1u << K_QUARANTINE))

static const char *const state_names[] = {
	"pending", "delivered", "failed", "held",
};

static const char *const kind_names[] = { "local", "remote" };

/* Indexed by enum dsn_ret: "-" is the empty value, RET not given. */
static const char *const ret_names[] = { "-", "full", "hdrs" };

static const char *const dsn_kind_names[] = {
	"none", "bounce", "delay", "success",
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define NSTATES	NELEM(state_names)
#define NKINDS	NELEM(kind_names)
#define RCPT_NFIELDS_V1	8
#define RCPT_NFIELDS	12
#define REQUIRED_KEYS	((1u << K_VERSION) | (1u << K_ID) | \
    (1u << K_CREATED) | (1u << K_SENDER) | (1u << K_END))

int
envelope_id_valid(const char *s, size_t n)
{
	size_t i;

	if (n != QUEUE_ID_LEN)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

void
envelope_init(struct envelope *e)
{
	memset(e, 0, sizeof(*e));
	e->version = ENVELOPE_VERSION;
}

void
envelope_free(struct envelope *e)
{
	free(e->rcpts);
	free(e->prepend);
	envelope_init(e);
}

int
envelope_set_prepend(struct envelope *e, const char *p, size_t n)
{
	char *c = NULL;

	if (n > ENVELOPE_PREPEND_MAX || (n > 0 && memchr(p, '\0', n) != NULL))
		return -1;
	if (n > 0) {
		if ((c = malloc(n + 1)) == NULL)
			return -1;
		memcpy(c, p, n);
		c[n] = '\0';
	}
	free(e->prepend);
	e->prepend = c;
	return 0;
}

size_t
envelope_prepend_len(const struct envelope *e)
{
	return e->prepend ? strlen(e->prepend) : 0;
}

int
envelope_add_rcpt(struct envelope *e, const struct envelope_rcpt *r)
{
	struct envelope_rcpt *p;
	size_t ncap;

	if (e->nrcpts >= ENVELOPE_MAX_RCPT)
		return -1;
	if (e->nrcpts == e->rcpt_cap) {
		ncap = e->rcpt_cap ? e->rcpt_cap * 2 : 4;
		if (ncap > ENVELOPE_MAX_RCPT)
			ncap = ENVELOPE_MAX_RCPT;
		p = realloc(e->rcpts, ncap * sizeof(*p));
		if (p == NULL)
			return -1;
		e->rcpts = p;
		e->rcpt_cap = ncap;
	}
	e->rcpts[e->nrcpts++] = *r;
	return 0;
}

/* ---- encoding ---- */

static int
needs_escape(unsigned char c)
{
	return c <= 0x20 || c == 0x7f || c == '%';
}

static int
id_valid(const char *id, size_t n)
{
	size_t i;

	if (n != QUEUE_ID_LEN)
		return 0;
	for (i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return 1;
}

/* "" or an RFC 3463 status code: class "." subject "." detail. */
static int
status_valid(const char *s, size_t n)
{
	size_t i = 0, part, digits;

	if (n == 0)
		return 1;
	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	for (i = 1, part = 0; part < 2; part++) {
		if (i >= n || s[i++] != '.')
			return 0;
		for (digits = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			digits++;
		if (digits == 0 || digits > 3)
			return 0;
	}
	return i == n;
}

/*
 * Writes one value: "-" when empty, "%2D" for a value that is exactly "-"
 * (so a lone '-' always means empty), otherwise the bytes with the escapes
 * of envelope.h. `max` is the size of the array holding s: a string not
 * terminated within it is refused.
 */
static int
put_value(struct buf *out, const char *s, size_t max)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, run, n;
	char esc[3];

	if ((n = strnlen(s, max)) == max)
		return -1;
	if (n == 0)
		return buf_appendc(out, '-');
	if (n == 1 && s[0] == '-')
		return buf_appends(out, "%2D");
	for (i = 0; i < n; i += run) {
		for (run = 0; i + run < n &&
		    !needs_escape((unsigned char)s[i + run]); run++)
			;
		if (run > 0) {
			if (buf_append(out, s + i, run) == -1)
				return -1;
			continue;
		}
		esc[0] = '%';
		esc[1] = hex[(unsigned char)s[i] >> 4];
		esc[2] = hex[(unsigned char)s[i] & 0x0f];
		if (buf_append(out, esc, 3) == -1)
			return -1;
		run = 1;
	}
	return 0;
}

#define PUT_FIELD(out, f)	put_value((out), (f), sizeof(f))

/*
 * The encoder runs for every message a worker commits: pieces appended,
 * no printf (14 calls of it were a fifth of a worker's instructions per
 * message).
 */
static int
put_key(struct buf *out, enum env_key k)
{
	return buf_appends(out, key_names[k]) == -1 || buf_append(out, ": ", 2) == -1 ? -1 : 0;
}

static int
put_num(struct buf *out, uint64_t v)
{
	char d[20];
	size_t n = sizeof(d);

	do
		d[--n] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	return buf_append(out, d + n, sizeof(d) - n);
}

/* "key: N\n" */
static int
put_num_line(struct buf *out, enum env_key k, uint64_t v)
{
	return put_key(out, k) == -1 || put_num(out, v) == -1 ? -1 : buf_appendc(out, '\n');
}

/* "key: word\n" for a word of ours (a name from a table, a checked ID). */
static int
put_word_line(struct buf *out, enum env_key k, const char *word)
{
	return put_key(out, k) == -1 || buf_appends(out, word) == -1 ? -1 : buf_appendc(out, '\n');
}

static int
put_line(struct buf *out, enum env_key k, const char *s, size_t max)
{
	if (put_key(out, k) == -1 || put_value(out, s, max) == -1)
		return -1;
	return buf_appendc(out, '\n');
}

static int
put_rcpt(struct buf *out, const struct envelope_rcpt *r)
{
	if ((size_t)r->state >= NSTATES || (size_t)r->kind >= NKINDS)
		return -1;
	if (put_key(out, K_RCPT) == -1 || buf_appends(out, state_names[r->state]) == -1 ||
	    buf_appendc(out, ' ') == -1 || buf_appends(out, kind_names[r->kind]) == -1 ||
	    buf_appendc(out, ' ') == -1 || put_num(out, r->attempts) == -1 ||
	    buf_appendc(out, ' ') == -1)
		return -1;
	if (PUT_FIELD(out, r->user) == -1 || buf_appendc(out, ' ') == -1 ||
	    PUT_FIELD(out, r->domain) == -1 || buf_appendc(out, ' ') == -1 ||
	    PUT_FIELD(out, r->addr) == -1 || buf_appendc(out, ' ') == -1 ||
	    PUT_FIELD(out, r->orig) == -1 || buf_appendc(out, ' ') == -1 ||
	    PUT_FIELD(out, r->last_error) == -1)
		return -1;
	if (!dsn_notify_valid(r->notify) || !status_valid(r->status,
	    strnlen(r->status, sizeof(r->status))))
		return -1;
	if (buf_appendc(out, ' ') == -1 || put_num(out, r->notify) == -1 ||
	    buf_appendc(out, ' ') == -1 ||
	    PUT_FIELD(out, r->orcpt) == -1 || buf_appendc(out, ' ') == -1 ||
	    PUT_FIELD(out, r->remote_mta) == -1 ||
	    buf_appendc(out, ' ') == -1 || PUT_FIELD(out, r->status) == -1)
		return -1;
	return buf_appendc(out, '\n');
}

/* Refuses what the decoder would refuse, so a written file always reads. */
static int
encodable(const struct envelope *e)
{
	return e->version >= 1 && e->version <= ENVELOPE_VERSION &&
	    envelope_prepend_len(e) <= ENVELOPE_PREPEND_MAX &&
	    id_valid(e->id, strnlen(e->id, sizeof(e->id))) &&
	    e->created >= 0 && e->next_attempt >= 0 &&
	    (size_t)e->ret < NELEM(ret_names) &&
	    (size_t)e->dsn_kind < NELEM(dsn_kind_names) &&
	    e->nrcpts <= ENVELOPE_MAX_RCPT &&
	    (e->nrcpts == 0 || e->rcpts != NULL);
}

static int
encode_all(const struct envelope *e, struct buf *out)
{
	size_t i;

	/* encodable() checked the ID, the times (>= 0) and the table indexes. */
	if (put_num_line(out, K_VERSION, ENVELOPE_VERSION) == -1 ||
	    put_word_line(out, K_ID, e->id) == -1 ||
	    put_num_line(out, K_CREATED, (uint64_t)e->created) == -1 ||
	    put_line(out, K_SENDER, e->sender, sizeof(e->sender)) == -1 ||
	    put_line(out, K_HELO, e->helo, sizeof(e->helo)) == -1 ||
	    put_line(out, K_CLIENT, e->client_addr, sizeof(e->client_addr)) == -1 ||
	    put_line(out, K_PROTO, e->proto, sizeof(e->proto)) == -1 ||
	    put_word_line(out, K_BODY, e->body_8bit ? "8bitmime" : "7bit") == -1 ||
	    put_num_line(out, K_SMTPUTF8, e->smtputf8 ? 1 : 0) == -1 ||
	    put_num_line(out, K_SIZE, e->size) == -1 ||
	    put_word_line(out, K_RET, ret_names[e->ret]) == -1 ||
	    put_line(out, K_ENVID, e->envid, sizeof(e->envid)) == -1 ||
	    put_num_line(out, K_NEXT, (uint64_t)e->next_attempt) == -1 ||
	    put_num_line(out, K_WARNED, e->warned ? 1 : 0) == -1 ||
	    put_word_line(out, K_DSNKIND, dsn_kind_names[e->dsn_kind]) == -1 ||
	    put_line(out, K_PREPEND, e->prepend ? e->prepend : "", ENVELOPE_PREPEND_MAX + 1) == -1 ||
	    put_num_line(out, K_QUARANTINE, e->quarantine ? 1 : 0) == -1)
		return -1;
	for (i = 0; i < e->nrcpts; i++)
		if (put_rcpt(out, &e->rcpts[i]) == -1)
			return -1;
	return put_num_line(out, K_END, 1);
}

int
envelope_encode(const struct envelope *e, struct buf *out)
{
	size_t start = out->len;

	if (encodable(e) && encode_all(e, out) == 0)
		return 0;
	/* Leave out as it was: never half an envelope. */
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return -1;
}

/* ---- decoding ---- */

static int
fail(const char **why, const char *msg)
{
	*why = msg;
	return -1;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;	/* lower case is not what we write: refused */
}

/*
 * Decodes one escaped value s[0..n) into dst (dstsz bytes with the NUL).
 * Raw controls and spaces are refused (the encoder escapes them), and so
 * is %00, which a C string could not hold.
 */
static int
unescape(const char *s, size_t n, char *dst, size_t dstsz, const char **why)
{
	size_t i, o = 0;
	int hi, lo;
	unsigned char c;

	if (n == 0)
		return fail(why, "empty value");
	if (n == 1 && s[0] == '-') {
		dst[0] = '\0';
		return 0;
	}
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f)
			return fail(why, "raw control character or space");
		if (c == '%') {
			if (n - i < 3 || (hi = hexval(s[i + 1])) < 0 ||
			    (lo = hexval(s[i + 2])) < 0)
				return fail(why, "bad escape");
			if ((c = (unsigned char)(hi << 4 | lo)) == 0)
				return fail(why, "NUL in value");
			i += 2;
		}
		if (o + 1 >= dstsz)
			return fail(why, "value too long");
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return 0;
}

#define GET_FIELD(s, n, f, why)	unescape((s), (n), (f), sizeof(f), (why))

/* Decimal without sign or leading zeros, at most max. */
static int
parse_num(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0, d;
	size_t i;

	if (n == 0 || (s[0] == '0' && n > 1))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (uint64_t)(s[i] - '0');
		if (d > max || v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int
parse_word(const char *s, size_t n, const char *const *names, size_t nnames)
{
	size_t i;

	for (i = 0; i < nnames; i++)
		if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
			return (int)i;
	return -1;
}

static int
is_word(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && memcmp(s, w, n) == 0;
}

/* Splits s[0..n) at single spaces into exactly nf fields. */
static int
split_fields(const char *s, size_t n, const char **f, size_t *flen,
    size_t nf)
{
	const char *sp, *end = s + n;
	size_t i;

	for (i = 0; i < nf; i++) {
		sp = memchr(s, ' ', (size_t)(end - s));
		if ((sp == NULL) != (i == nf - 1))
			return -1;
		f[i] = s;
		flen[i] = (size_t)((sp ? sp : end) - s);
		s = sp ? sp + 1 : end;
	}
	return 0;
}

/* The fields version 2 added to a rcpt line: notify orcpt mta status. */
static int
decode_rcpt_v2(struct envelope_rcpt *r, const char **f, const size_t *fl,
    const char **why)
{
	uint64_t x;

	if (parse_num(f[8], fl[8], 15, &x) == -1 ||
	    !dsn_notify_valid((unsigned)x))
		return fail(why, "rcpt: bad notify");
	r->notify = (unsigned)x;
	if (GET_FIELD(f[9], fl[9], r->orcpt, why) == -1 ||
	    GET_FIELD(f[10], fl[10], r->remote_mta, why) == -1 ||
	    GET_FIELD(f[11], fl[11], r->status, why) == -1)
		return -1;
	if (!status_valid(r->status, strlen(r->status)))
		return fail(why, "rcpt: bad status");
	return 0;
}

static int
decode_rcpt(struct envelope *e, const char *v, size_t n, const char **why)
{
	struct envelope_rcpt r;
	const char *f[RCPT_NFIELDS];
	size_t fl[RCPT_NFIELDS];
	size_t nf = e->version == 1 ? RCPT_NFIELDS_V1 : RCPT_NFIELDS;
	uint64_t att;
	int st, kd;

	memset(&r, 0, sizeof(r));
	if (split_fields(v, n, f, fl, nf) == -1)
		return fail(why, "rcpt: wrong number of fields");
	if ((st = parse_word(f[0], fl[0], state_names, NSTATES)) < 0)
		return fail(why, "rcpt: bad state");
	if ((kd = parse_word(f[1], fl[1], kind_names, NKINDS)) < 0)
		return fail(why, "rcpt: bad kind");
	if (parse_num(f[2], fl[2], UINT32_MAX, &att) == -1)
		return fail(why, "rcpt: bad attempts");
	r.state = (enum rcpt_state)st;
	r.kind = (enum rcpt_kind)kd;
	r.attempts = (uint32_t)att;
	if (GET_FIELD(f[3], fl[3], r.user, why) == -1 ||
	    GET_FIELD(f[4], fl[4], r.domain, why) == -1 ||
	    GET_FIELD(f[5], fl[5], r.addr, why) == -1 ||
	    GET_FIELD(f[6], fl[6], r.orig, why) == -1 ||
	    GET_FIELD(f[7], fl[7], r.last_error, why) == -1)
		return -1;
	if (nf == RCPT_NFIELDS && decode_rcpt_v2(&r, f, fl, why) == -1)
		return -1;
	if (e->nrcpts >= ENVELOPE_MAX_RCPT)
		return fail(why, "too many recipients");
	if (envelope_add_rcpt(e, &r) == -1)
		return fail(why, "out of memory");
	return 0;
}

static int
decode_number_key(struct envelope *e, enum env_key k, const char *v,
    size_t n, const char **why)
{
	uint64_t x;

	switch (k) {
	case K_VERSION:
		if (parse_num(v, n, UINT32_MAX, &x) == -1)
			return fail(why, "bad version");
		if (x < 1 || x > ENVELOPE_VERSION)
			return fail(why, "unsupported version");
		e->version = (uint32_t)x;
		return 0;
	case K_CREATED:
		if (parse_num(v, n, INT64_MAX, &x) == -1)
			return fail(why, "bad created");
		e->created = (int64_t)x;
		return 0;
	case K_SIZE:
		if (parse_num(v, n, UINT64_MAX, &x) == -1)
			return fail(why, "bad size");
		e->size = x;
		return 0;
	case K_SMTPUTF8:
		if (parse_num(v, n, 1, &x) == -1)
			return fail(why, "bad smtputf8");
		e->smtputf8 = (int)x;
		return 0;
	case K_NEXT:
		if (parse_num(v, n, INT64_MAX, &x) == -1)
			return fail(why, "bad next_attempt");
		e->next_attempt = (int64_t)x;
		return 0;
	case K_WARNED:
		if (parse_num(v, n, 1, &x) == -1)
			return fail(why, "bad warned");
		e->warned = (int)x;
		return 0;
	case K_QUARANTINE:
		if (parse_num(v, n, 1, &x) == -1)
			return fail(why, "bad quarantine");
		e->quarantine = (int)x;
		return 0;
	case K_END:
		if (!is_word(v, n, "1"))
			return fail(why, "bad end");
		return 0;
	default:
		return fail(why, "internal: not a number key");
	}
}

static int
decode_prepend(struct envelope *e, const char *v, size_t n, const char **why)
{
	/* Unescaped it is never longer than escaped. */
	if ((e->prepend = malloc(n + 1)) == NULL)
		return fail(why, "out of memory");
	if (unescape(v, n, e->prepend, n + 1, why) == -1)
		return -1;
	if (strlen(e->prepend) > ENVELOPE_PREPEND_MAX)
		return fail(why, "prepend too long");
	if (e->prepend[0] == '\0') {
		free(e->prepend);
		e->prepend = NULL;
	}
	return 0;
}

static int
decode_value(struct envelope *e, enum env_key k, const char *v, size_t n,
    const char **why)
{
	int i;

	switch (k) {
	case K_ID:
		if (!id_valid(v, n))
			return fail(why, "bad id");
		memcpy(e->id, v, n);
		e->id[n] = '\0';
		return 0;
	case K_SENDER:
		return GET_FIELD(v, n, e->sender, why);
	case K_HELO:
		return GET_FIELD(v, n, e->helo, why);
	case K_CLIENT:
		return GET_FIELD(v, n, e->client_addr, why);
	case K_PROTO:
		return GET_FIELD(v, n, e->proto, why);
	case K_BODY:
		if (is_word(v, n, "7bit"))
			e->body_8bit = 0;
		else if (is_word(v, n, "8bitmime"))
			e->body_8bit = 1;
		else
			return fail(why, "bad body");
		return 0;
	case K_RET:
		if ((i = parse_word(v, n, ret_names, NELEM(ret_names))) < 0)
			return fail(why, "bad ret");
		e->ret = (enum dsn_ret)i;
		return 0;
	case K_ENVID:
		return GET_FIELD(v, n, e->envid, why);
	case K_DSNKIND:
		if ((i = parse_word(v, n, dsn_kind_names,
		    NELEM(dsn_kind_names))) < 0)
			return fail(why, "bad dsn_kind");
		e->dsn_kind = (enum dsn_kind)i;
		return 0;
	case K_RCPT:
		return decode_rcpt(e, v, n, why);
	case K_PREPEND:
		return decode_prepend(e, v, n, why);
	default:
		return decode_number_key(e, k, v, n, why);
	}
}

/* Splits "key: value" (without the newline); returns the key or -1. */
static int
split_line(const char *s, size_t n, const char **v, size_t *vlen)
{
	const char *colon;
	int k;

	if ((colon = memchr(s, ':', n)) == NULL ||
	    (size_t)(colon - s) + 1 >= n || colon[1] != ' ')
		return -1;
	if ((k = parse_word(s, (size_t)(colon - s), key_names, K_NKEYS)) < 0)
		return -1;
	*v = colon + 2;
	*vlen = n - (size_t)(colon - s) - 2;
	return k;
}

static int
decode_lines(const char *data, size_t len, struct envelope *e,
    const char **why)
{
	const char *p = data, *end = data + len, *nl, *v;
	unsigned seen = 0;
	size_t vlen;
	int k;

	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			return fail(why, "torn file: last line unterminated");
		if ((k = split_line(p, (size_t)(nl - p), &v, &vlen)) < 0)
			return fail(why, "malformed line or unknown key");
		/* The version says how to read the rest, so it comes first. */
		if ((p == data) != (k == K_VERSION))
			return fail(why, "version must be the first line");
		if (k != K_RCPT && (seen & (1u << k)))
			return fail(why, "duplicate key");
		if (e->version == 1 && ((1u << k) & V2_KEYS))
			return fail(why, "key unknown in version 1");
		if (e->version < 3 && ((1u << k) & V3_KEYS))
			return fail(why, "key unknown before version 3");
		seen |= 1u << k;
		if (decode_value(e, (enum env_key)k, v, vlen, why) == -1)
			return -1;
		p = nl + 1;
		if (k == K_END)
			break;
	}
	if (!(seen & (1u << K_END)))
		return fail(why, "torn file: no end line");
	if (p != end)
		return fail(why, "data after end line");
	if ((seen & REQUIRED_KEYS) != REQUIRED_KEYS)
		return fail(why, "required key missing");
	return 0;
}

int
envelope_decode(const char *data, size_t len, struct envelope *e,
    const char **why)
{
	const char *reason = "unknown error";

	envelope_init(e);
	if (data == NULL || len == 0) {
		reason = "empty file";
	} else if (decode_lines(data, len, e, &reason) == 0) {
		if (why != NULL)
			*why = NULL;
		return 0;
	}
	envelope_free(e);
	if (why != NULL)
		*why = reason;
	return -1;
}
