/*
 * dkim_canon — the byte-level parts of DKIM shared by the verifier and the
 * signer (src/mailauth/dkim.c, dkim_sign.c): splitting a streamed message
 * into its header fields and body, header and body canonicalization
 * (RFC 6376 3.4), the bottom-up header selection of h= (RFC 6376 5.4.2),
 * and the base64 of b=, bh= and p= (with FWS ignored, RFC 6376 2.4).
 */
#ifndef TERN_DKIM_CANON_H
#define TERN_DKIM_CANON_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Zero is relaxed, so a zeroed options struct signs relaxed/relaxed. */
enum dkim_canon {
	DKIM_CANON_RELAXED = 0,
	DKIM_CANON_SIMPLE = 1,
};

#define DKIM_HEADER_MAX   (1024 * 1024)	/* bound on the collected header section */
#define DKIM_FIELDS_MAX   4096		/* header fields kept; more is an overflow */

/*
 * Header canonicalization of one field f[0..len) as it appears in the
 * message ("Name: value", folded, without its final CRLF). Appends the
 * result to out, followed by CRLF if crlf is set. -1 if out is full.
 */
int  dkim_canon_header(enum dkim_canon c, const char *f, size_t len, int crlf, struct buf *out);

/*
 * A c= value v[0..n) (RFC 6376 3.5): "header/body", each "simple" or
 * "relaxed"; one word alone is the header's, with a simple body. 0, or -1
 * (hc, bc unchanged) if it is anything else.
 */
int  dkim_canon_parse(const char *v, size_t n, enum dkim_canon *hc, enum dkim_canon *bc);

/*
 * Streaming body canonicalization. Bytes go in any chunking; canonical
 * bytes come out through sink. Trailing empty lines are held back until
 * more content shows they are not trailing. limit (UINT64_MAX: none) caps
 * what reaches sink (the l= tag); total counts all canonical bytes.
 */
struct dkim_body {
	enum dkim_canon c;
	uint64_t limit, total;
	size_t   blank;		/* empty lines held back */
	int      wsp;		/* relaxed: a WSP run held back */
	int      cr;		/* a CR held back (may start a CRLF) */
	int      linelen;	/* the current line has content */
	void   (*sink)(void *ctx, const void *p, size_t n);
	void    *ctx;
};

void dkim_body_init(struct dkim_body *b, enum dkim_canon c, uint64_t limit,
    void (*sink)(void *, const void *, size_t), void *ctx);
void dkim_body_feed(struct dkim_body *b, const char *p, size_t n);
void dkim_body_finish(struct dkim_body *b);

/*
 * A message split as it streams in: header bytes are collected in hdr (the
 * separator line excluded) up to DKIM_HEADER_MAX; dkim_msg_feed() says
 * where the body starts. Once the header is complete the fields are
 * indexed (offsets into hdr.data, field lengths without the final CRLF).
 */
struct dkim_field {
	size_t off, len;
	size_t namelen;		/* name without trailing WSP; 0: no ':' */
};

struct dkim_msg {
	struct buf         hdr;
	int                st;		/* bytes of "\r\n\r\n" matched */
	int                done;	/* header complete */
	int                overflow;
	struct dkim_field *f;
	size_t             nf;
};

void dkim_msg_init(struct dkim_msg *m);
void dkim_msg_free(struct dkim_msg *m);
/*
 * Takes the next chunk. Returns the offset in p where body bytes start:
 * n if the whole chunk was header, 0 if the header was already complete.
 * Returns (size_t)-1 if the header section passes DKIM_HEADER_MAX.
 */
size_t dkim_msg_feed(struct dkim_msg *m, const char *p, size_t n);
/* Ends the header (a message with no body separator); -1 on ENOMEM. */
int  dkim_msg_end(struct dkim_msg *m);
/* 1 if field i is named name[0..n) (case-insensitive). */
int  dkim_msg_is(const struct dkim_msg *m, size_t i, const char *name, size_t n);
/*
 * RFC 6376 5.4.2: the last field named name[0..n) not yet marked in used
 * (an array of m->nf flags), searching upwards; marks and returns it, or
 * -1 if none is left (the name then contributes nothing to the hash).
 */
long dkim_msg_select(const struct dkim_msg *m, const char *name, size_t n, unsigned char *used);

/* base64 decode ignoring SP, HTAB, CR, LF; -1 on bad input or if it passes max. */
int  dkim_b64_decode(const char *s, size_t len, unsigned char *out, size_t max, size_t *outlen);
int  dkim_b64_encode(const unsigned char *p, size_t n, struct buf *out);

#endif
