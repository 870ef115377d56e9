/*
 * passwd — checking a password against a Dovecot passwd-file password
 * field with libxcrypt: "{CRYPT}", "{SHA512-CRYPT}", "{SHA256-CRYPT}",
 * "{BLF-CRYPT}", "{MD5-CRYPT}" prefixes or a bare crypt(3) hash ($y$
 * yescrypt, $2b$ bcrypt, $6$ SHA-512...), and "{PLAIN}" only when allowed.
 */
#ifndef TERN_PASSWD_H
#define TERN_PASSWD_H

#include <stddef.h>

enum passwd_kind { PASSWD_HASH, PASSWD_PLAIN, PASSWD_NONE /* empty, "*", "!": no login */, PASSWD_UNKNOWN };

/* What a stored password field is. */
enum passwd_kind passwd_kind(const char *stored);
/* 1 if password matches stored, 0 if not (or not allowed). Constant time for PLAIN. */
int passwd_verify(const char *stored, const char *password, int allow_plain);
/*
 * Makes a new yescrypt hash of password in Dovecot form "{CRYPT}$y$...".
 * Returns 0 or -1 (out too small, no entropy).
 */
int passwd_hash(const char *password, char *out, size_t outsz);

#endif
