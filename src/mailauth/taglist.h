/*
 * taglist — the "tag=value; tag=value" lists of RFC 6376 section 3.2, used
 * by DKIM signatures and key records and by DMARC records (RFC 7489 6.4).
 * taglist_parse() only splits: each entry is a pair of spans into the input
 * (no copy, no decoding), so the input must outlive the taglist. Values are
 * trimmed of surrounding FWS; FWS inside a value is kept.
 */
#ifndef TERN_TAGLIST_H
#define TERN_TAGLIST_H

#include <stddef.h>

#define TAGLIST_MAX 64		/* more tags than this is refused */

struct tag {
	const char *name;
	size_t      namelen;
	const char *val;
	size_t      vallen;
};

struct taglist {
	struct tag t[TAGLIST_MAX];
	size_t     n;
};

/*
 * Parses s[0..len). Returns 0, or -1 with a reason in err on a syntax error:
 * bad tag name, missing '=', a character outside VALCHAR/FWS, a duplicate
 * tag, an empty tag-spec (";;"), too many tags. A trailing ';' and an empty
 * list are accepted (callers check for the tags they require).
 */
int  taglist_parse(const char *s, size_t len, struct taglist *tl, char *err, size_t errlen);
/* The entry named name (tag names are case-sensitive), or NULL. */
const struct tag *taglist_find(const struct taglist *tl, const char *name);
/* 1 if the value is exactly s (case-sensitive), else 0. */
int  taglist_val_is(const struct tag *t, const char *s);

#endif
