/*
 * orgdomain — the DMARC Organizational Domain (RFC 7489 3.2): the public
 * suffix of a name plus one label, from the Public Suffix List (libpsl).
 * Open one context at start (it holds the loaded list), ask it many times,
 * close it at exit. The context is read-only after opening.
 */
#ifndef TERN_ORGDOMAIN_H
#define TERN_ORGDOMAIN_H

#include <stddef.h>

/* Debian's compiled list (package publicsuffix), tried first. */
#define ORGDOMAIN_DEFAULT_LIST "/usr/share/publicsuffix/public_suffix_list.dafsa"

struct orgdomain;

/*
 * Loads the list at path (a .dafsa or .dat file; NULL = the Debian list),
 * falling back to libpsl's newest available list, then to its built-in one.
 * NULL only on ENOMEM.
 */
struct orgdomain *orgdomain_open(const char *path);
void orgdomain_close(struct orgdomain *od);

/*
 * Writes the Organizational Domain of name[0..len) to out, lower case, NUL
 * terminated. -1 if name has none: empty, a leading or empty label, longer
 * than 253 bytes, a NUL byte, or itself a public suffix ("co.uk").
 * UTF-8 labels are accepted (the list has U-label rules).
 */
int  orgdomain_get(const struct orgdomain *od, const char *name, size_t len,
	char *out, size_t outlen);

/* 1 if a and b (lengths al, bl) have the same Organizational Domain, else 0. */
int  orgdomain_same(const struct orgdomain *od, const char *a, size_t al,
	const char *b, size_t bl);

#endif
