/*
 * dmarcrep — DMARC aggregate reports (RFC 7489 7.2) in the check process.
 *
 * Every DMARC evaluation of a domain whose record asks for reports (rua=
 * mailto:) becomes one line (dmarc_report.h) in spool/dmarc/cur.BEGIN, a
 * folder the parent creates mode 0700 for the check process's user. When
 * the interval ends the file becomes done.BEGIN.END and a thread of its own
 * aggregates it per policy domain and address, checks that an address
 * outside the policy domain's Organizational Domain agreed to receive
 * reports (7.1), and drops one report message per address into the
 * maildrop, as tern-sendmail would. A file left by an earlier run is sent
 * at start. The process runs in the spool (paths are relative to it). The file is bounded: records beyond DMARCREP_FILE_MAX bytes are
 * dropped and counted in the log.
 */
#ifndef TERN_DMARCREP_H
#define TERN_DMARCREP_H

#include <time.h>

#include "daemon/config.h"
#include "mailauth/authcheck.h"

#define DMARCREP_DIR      "dmarc"
#define DMARCREP_FILE_MAX (16u * 1024 * 1024)

struct dmarcrep;
struct orgdomain;

/* NULL when reports are off or the folder cannot be used (logged). od must outlive it. */
struct dmarcrep *dmarcrep_open(const struct config *cfg, const struct orgdomain *od, time_t now);
/* Records one evaluation (any thread). ip is the client's address. */
void   dmarcrep_note(struct dmarcrep *rep, const char *ip, const char *mailfrom,
	const struct authcheck_result *r);
/* Seconds until the current interval ends (at least 1). */
time_t dmarcrep_wait(const struct dmarcrep *rep, time_t now);
/* Ends the interval if it is over and sends the reports in the background. */
void   dmarcrep_tick(struct dmarcrep *rep, time_t now);
/* Waits for the sending thread; the current file stays for the next start. */
void   dmarcrep_close(struct dmarcrep *rep);

#endif
