/* dmarcrep — DMARC aggregate reports in the check process (see dmarcrep.h). */
#include "server/dmarcrep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/log.h"
#include "dns/unbound.h"
#include "mailauth/dmarc_report.h"
#include "mailauth/orgdomain.h"
#include "queue/maildrop.h"

#define REP_DNS_MS   5000
#define REP_XML_MAX  (64u * 1024 * 1024)
#define REP_MSG_MAX  (48u * 1024 * 1024)

struct dmarcrep {
	const struct config    *cfg;
	const struct orgdomain *od;
	char                    dir[PATH_MAX];
	pthread_mutex_t         lock;
	int                     fd;		/* cur.BEGIN, -1 if it could not be opened */
	time_t                  begin, end;
	uint64_t                bytes, dropped;
	pthread_t               sender;
	int                     sending;	/* sender started and not joined */
};

/* What this receiver did (7.2.1.1 policy_evaluated): the published policy
 * after pct, as the auth_checks actions turned it into reject/quarantine/none. */
static enum dmarc_policy
applied(const struct config *cfg, enum dmarc_policy disp)
{
	static const enum dmarc_policy of_action[] = { DMARC_POLICY_NONE, DMARC_POLICY_REJECT,
		DMARC_POLICY_QUARANTINE };

	if (disp == DMARC_POLICY_REJECT)
		return of_action[cfg->checks.dmarc_reject];
	if (disp == DMARC_POLICY_QUARANTINE)
		return of_action[cfg->checks.dmarc_quarantine];
	return DMARC_POLICY_NONE;
}

/* The record of one evaluation; -1 when there is nothing to report. */
static int
make_record(const struct config *cfg, const char *ip, const char *mailfrom,
    const struct authcheck_result *r, struct drep_record *out)
{
	const struct dmarc_outcome *o = &r->dmarc;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!r->dmarc_run || !o->policy_domain[0] ||
	    (o->result != DMARC_RESULT_PASS && o->result != DMARC_RESULT_FAIL))
		return -1;
	for (i = 0; i < o->record.nrua && out->nrua < DREP_RUA_MAX; i++) {
		size_t k;

		if (drep_rua_address(o->record.rua[i].uri, out->rua[out->nrua],
		    sizeof(out->rua[0])) == -1)
			continue;
		for (k = 0; k < out->nrua && strcasecmp(out->rua[k], out->rua[out->nrua]) != 0; k++)
			;
		if (k == out->nrua)	/* listed twice: one report */
			out->nrua++;
	}
	if (out->nrua == 0)
		return -1;
	snprintf(out->ip, sizeof(out->ip), "%s", ip);
	snprintf(out->header_from, sizeof(out->header_from), "%s", o->header_from);
	snprintf(out->policy_domain, sizeof(out->policy_domain), "%s", o->policy_domain);
	out->adkim = o->record.adkim;
	out->aspf = o->record.aspf;
	out->p = o->record.p;
	out->sp = o->record.sp;
	out->pct = (unsigned)o->record.pct;
	out->disposition = o->result == DMARC_RESULT_FAIL ? applied(cfg, o->disposition) :
	    DMARC_POLICY_NONE;
	out->dkim_aligned = o->dkim_aligned;
	out->spf_aligned = o->spf_aligned;
	snprintf(out->spf_domain, sizeof(out->spf_domain), "%s", r->dmarc_spf_domain);
	out->spf_helo = mailfrom[0] == '\0';
	snprintf(out->spf_result, sizeof(out->spf_result), "%s", spf_result_str(r->spf.result));
	for (i = 0; i < r->ndkim && i < DREP_DKIM_MAX; i++) {
		struct drep_dkim *d = &out->dkim[out->ndkim++];

		snprintf(d->domain, sizeof(d->domain), "%s", r->dkim[i].domain);
		snprintf(d->selector, sizeof(d->selector), "%s", r->dkim[i].selector);
		snprintf(d->result, sizeof(d->result), "%s", dkim_result_str(r->dkim[i].result));
	}
	return 0;
}

void
dmarcrep_note(struct dmarcrep *rep, const char *ip, const char *mailfrom,
    const struct authcheck_result *r)
{
	struct drep_record *rec;
	char line[DREP_LINE_MAX + 1];
	int n = -1;

	if ((rec = malloc(sizeof(*rec))) == NULL)
		return;
	if (make_record(rep->cfg, ip, mailfrom, r, rec) == 0)
		n = drep_line_format(rec, line, sizeof(line));
	free(rec);
	if (n <= 0)
		return;
	pthread_mutex_lock(&rep->lock);
	if (rep->fd == -1 || rep->bytes + (uint64_t)n > DMARCREP_FILE_MAX ||
	    write(rep->fd, line, (size_t)n) != n)
		rep->dropped++;
	else
		rep->bytes += (uint64_t)n;
	pthread_mutex_unlock(&rep->lock);
}

/* ---- the report message ---- */

static int
gzip_buf(const struct buf *in, struct buf *out)
{
	z_stream z;
	unsigned char chunk[16384];
	int rc, ok = 1;

	memset(&z, 0, sizeof(z));
	/* 15 + 16: a gzip wrapper (RFC 1952), as 7.2.1.1 asks for ".gz" */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	z.next_in = (unsigned char *)in->data;
	z.avail_in = (uInt)in->len;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof(chunk);
		rc = deflate(&z, Z_FINISH);
		if (rc == Z_STREAM_ERROR || buf_append(out, chunk, sizeof(chunk) - z.avail_out) == -1)
			ok = 0;
	} while (ok && rc != Z_STREAM_END);
	deflateEnd(&z);
	return ok ? 0 : -1;
}

static int
base64_lines(const struct buf *in, struct buf *out)
{
	char enc[BASE64_ENCODED_LEN(57)];
	size_t off, n;

	for (off = 0; off < in->len; off += n) {
		n = in->len - off < 57 ? in->len - off : 57;	/* 76 characters a line */
		if (buf_append(out, enc, base64_encode((const unsigned char *)in->data + off, n, enc)) ||
		    buf_appends(out, "\r\n"))
			return -1;
	}
	return 0;
}

struct report {
	const struct drep_group *g;
	const char              *receiver;	/* the domain of from */
	char                     id[128];
	char                     file[512];
	time_t                   begin, end;
};

static int
message(const struct dmarcrep *rep, const struct report *r, const struct buf *gz, struct buf *m)
{
	const struct config *cfg = rep->cfg;
	char date[64], bound[40];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	snprintf(bound, sizeof(bound), "=_tern_%s", r->id);
	bound[strcspn(bound, "@")] = '\0';
	return buf_printf(m, "From: %s\r\nTo: %s\r\nDate: %s\r\nSubject: Report Domain: %s "
	    "Submitter: %s Report-ID: <%s>\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
	    "This is a DMARC aggregate report (RFC 7489) in MIME format.\r\n\r\n"
	    "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "DMARC aggregate report for %s from %s (%s),\r\n%lld to %lld.\r\n\r\n"
	    "--%s\r\nContent-Type: application/gzip; name=\"%s\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n",
	    cfg->checks.reports.from, r->g->rua, date, r->g->policy_domain, r->receiver, r->id,
	    r->id, bound, bound, r->g->policy_domain, cfg->checks.reports.org_name, r->receiver,
	    (long long)r->begin, (long long)r->end, bound, r->file, r->file) == -1 ||
	    base64_lines(gz, m) == -1 || buf_printf(m, "\r\n--%s--\r\n", bound) == -1 ? -1 : 0;
}

/* Into the maildrop, as tern-sendmail writes it (maildrop.h). */
static int
drop(const struct dmarcrep *rep, const char *rcpt, const struct buf *msg)
{
	const char *rcpts[1] = { rcpt };
	char hdr[1024], tmp[PATH_MAX], final[PATH_MAX];
	uint64_t rnd = 0;
	int fd, ok;

	if (maildrop_header(rep->cfg->checks.reports.from, rcpts, 1, hdr, sizeof(hdr)) == -1)
		return -1;
	(void)!getrandom(&rnd, sizeof(rnd), 0);
	snprintf(tmp, sizeof(tmp), MAILDROP_DIR "/.%d.%016" PRIx64, (int)getpid(), rnd);
	snprintf(final, sizeof(final), MAILDROP_DIR "/%lld.%d.%016" PRIx64, (long long)time(NULL),
	    (int)getpid(), rnd);
	/* readable by the queue, which runs as another user (as tern-sendmail does) */
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) == -1)
		return -1;
	ok = fchmod(fd, 0644) == 0 && write(fd, hdr, strlen(hdr)) == (ssize_t)strlen(hdr) &&
	    write(fd, msg->data, msg->len) == (ssize_t)msg->len && fsync(fd) == 0;
	ok = close(fd) == 0 && ok && rename(tmp, final) == 0;
	if (!ok)
		unlink(tmp);
	return ok ? 0 : -1;
}

/*
 * May reports for policy go to an address at rua_domain? Yes inside the
 * same Organizational Domain; else only if rua_domain publishes
 * <policy>._report._dmarc.<rua_domain> TXT "v=DMARC1..." (7.1).
 */
static int
authorized(const struct dmarcrep *rep, const struct dns_resolver *dns, const char *policy,
    const char *rua_domain)
{
	struct dns_answer a;
	char name[2 * DNS_NAME_MAX + 32];
	size_t i;
	int ok = 0;

	if (orgdomain_same(rep->od, policy, strlen(policy), rua_domain, strlen(rua_domain)))
		return 1;
	if (dns == NULL || snprintf(name, sizeof(name), "%s._report._dmarc.%s", policy,
	    rua_domain) >= (int)sizeof(name))
		return 0;
	dns_answer_init(&a);
	if (dns_query(dns, name, DNS_T_TXT, &a) == 0 && a.status == DNS_OK)
		for (i = 0; i < a.n; i++)
			if (a.rrs[i].len >= 8 && strncasecmp(a.rrs[i].data, "v=DMARC1", 8) == 0 &&
			    (a.rrs[i].len == 8 || a.rrs[i].data[8] == ';' || a.rrs[i].data[8] == ' '))
				ok = 1;
	dns_answer_free(&a);
	return ok;
}

static void
send_one(const struct dmarcrep *rep, const struct dns_resolver *dns, struct report *r, size_t n)
{
	const struct config *cfg = rep->cfg;
	struct drep_meta m;
	struct buf xml, gz, msg;
	const char *at = strrchr(r->g->rua, '@');
	int ok;

	if (!authorized(rep, dns, r->g->policy_domain, at + 1)) {
		log_info("event=dmarc-report-skipped domain=%s rua=<%s> reason=\"external "
		    "destination not authorized (RFC 7489 7.1)\"", r->g->policy_domain, r->g->rua);
		return;
	}
	snprintf(r->id, sizeof(r->id), "%lld.%zu.%s", (long long)r->begin, n, cfg->hostname);
	snprintf(r->file, sizeof(r->file), "%s!%s!%lld!%lld.xml.gz", r->receiver,
	    r->g->policy_domain, (long long)r->begin, (long long)r->end);
	m.org_name = cfg->checks.reports.org_name;
	m.email = cfg->checks.reports.from;
	m.report_id = r->id;
	m.begin = r->begin;
	m.end = r->end;
	buf_init(&xml, REP_XML_MAX);
	buf_init(&gz, REP_XML_MAX);
	buf_init(&msg, REP_MSG_MAX);
	ok = drep_xml(r->g, &m, &xml) == 0 && gzip_buf(&xml, &gz) == 0 &&
	    message(rep, r, &gz, &msg) == 0 && drop(rep, r->g->rua, &msg) == 0;
	log_info("event=dmarc-report domain=%s rua=<%s> rows=%zu id=%s result=%s",
	    r->g->policy_domain, r->g->rua, r->g->nrows, r->id, ok ? "queued" : "failed");
	buf_free(&xml);
	buf_free(&gz);
	buf_free(&msg);
}

/* "PREFIX.B" or "PREFIX.B.E" (e NULL) file names: decimal seconds. */
static int
name_times(const char *name, const char *prefix, long long *b, long long *e)
{
	size_t n = strlen(prefix);
	char *end;

	if (strncmp(name, prefix, n) != 0 || name[n] < '0' || name[n] > '9')
		return -1;
	errno = 0;
	*b = strtoll(name + n, &end, 10);
	if (errno != 0)
		return -1;
	if (e == NULL)
		return *end == '\0' ? 0 : -1;
	if (end[0] != '.' || end[1] < '0' || end[1] > '9')
		return -1;
	*e = strtoll(end + 1, &end, 10);
	return errno == 0 && *end == '\0' ? 0 : -1;
}

/* Aggregates the records of one ended interval. */
static void
read_records(const char *path, struct drep_agg *agg)
{
	struct drep_record *rec = malloc(sizeof(*rec));
	char *line = malloc(DREP_LINE_MAX + 2);
	size_t bad = 0;
	FILE *f;

	if (rec == NULL || line == NULL || (f = fopen(path, "re")) == NULL) {
		free(rec);
		free(line);
		return;
	}
	while (fgets(line, DREP_LINE_MAX + 2, f) != NULL) {
		size_t n = strlen(line);

		if (n == 0 || line[n - 1] != '\n' || drep_line_parse(line, n - 1, rec) == -1) {
			bad++;
			continue;
		}
		(void)drep_agg_add(agg, rec);
	}
	fclose(f);
	free(rec);
	free(line);
	if (bad || agg->dropped)
		log_warn("event=dmarc-report-records file=\"%s\" malformed=%zu dropped=%" PRIu64,
		    path, bad, agg->dropped);
}

static void
send_file(const struct dmarcrep *rep, const struct dns_resolver *dns, const char *name)
{
	struct drep_agg agg;
	struct report r;
	char path[PATH_MAX];
	long long b, e;
	size_t i;

	snprintf(path, sizeof(path), "%s/%s", rep->dir, name);
	if (name_times(name, "done.", &b, &e) == -1) {
		unlink(path);
		return;
	}
	drep_agg_init(&agg);
	read_records(path, &agg);
	memset(&r, 0, sizeof(r));
	r.receiver = strrchr(rep->cfg->checks.reports.from, '@') + 1;
	r.begin = (time_t)b;
	r.end = (time_t)e;
	for (i = 0; i < agg.ngroups; i++) {
		r.g = &agg.groups[i];
		send_one(rep, dns, &r, i);
	}
	drep_agg_free(&agg);
	unlink(path);
}

static void *
sender_thread(void *arg)
{
	struct dmarcrep *rep = arg;
	struct dns_unbound *u;
	struct dns_resolver r;
	struct dirent *de;
	char err[256];
	DIR *dir;

	u = dns_unbound_new(rep->cfg->dns_server, REP_DNS_MS, err, sizeof(err));
	if (u != NULL)
		r = dns_unbound_resolver(u);
	if ((dir = opendir(rep->dir)) != NULL) {
		while ((de = readdir(dir)) != NULL)
			if (strncmp(de->d_name, "done.", 5) == 0)
				send_file(rep, u ? &r : NULL, de->d_name);
		closedir(dir);
	}
	dns_unbound_free(u);
	return NULL;
}

static void
start_sender(struct dmarcrep *rep)
{
	if (rep->sending) {
		pthread_join(rep->sender, NULL);
		rep->sending = 0;
	}
	if (pthread_create(&rep->sender, NULL, sender_thread, rep) == 0)
		rep->sending = 1;
}

/* ---- intervals ---- */

static time_t
interval_end(const struct dmarcrep *rep, time_t now)
{
	time_t iv = (time_t)rep->cfg->checks.reports.interval;

	return (now / iv + 1) * iv;	/* whole intervals since the epoch: days start at 00:00 UTC */
}

static void
open_current(struct dmarcrep *rep, time_t now)
{
	char path[PATH_MAX];

	rep->begin = now;
	rep->end = interval_end(rep, now);
	rep->bytes = 0;
	snprintf(path, sizeof(path), "%s/cur.%lld", rep->dir, (long long)now);
	rep->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (rep->fd == -1)
		log_warn("event=dmarc-report-file-failed file=\"%s\" error=\"%s\"", path,
		    strerror(errno));
}

/* Files cur.BEGIN of earlier runs end now. */
static void
close_leftovers(struct dmarcrep *rep, time_t now)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct dirent *de;
	long long b;
	DIR *dir;

	if ((dir = opendir(rep->dir)) == NULL)
		return;
	while ((de = readdir(dir)) != NULL)
		if (name_times(de->d_name, "cur.", &b, NULL) == 0) {
			snprintf(from, sizeof(from), "%s/%s", rep->dir, de->d_name);
			snprintf(to, sizeof(to), "%s/done.%lld.%lld", rep->dir, b, (long long)now);
			(void)rename(from, to);
		}
	closedir(dir);
}

struct dmarcrep *
dmarcrep_open(const struct config *cfg, const struct orgdomain *od, time_t now)
{
	struct dmarcrep *rep;

	if (!cfg->checks.reports.enabled || (rep = calloc(1, sizeof(*rep))) == NULL)
		return NULL;
	rep->cfg = cfg;
	rep->od = od;
	rep->fd = -1;
	pthread_mutex_init(&rep->lock, NULL);
	snprintf(rep->dir, sizeof(rep->dir), DMARCREP_DIR);
	close_leftovers(rep, now);
	open_current(rep, now);
	start_sender(rep);
	log_info("event=dmarc-reports dir=\"%s\" interval=%u", rep->dir,
	    cfg->checks.reports.interval);
	return rep;
}

time_t
dmarcrep_wait(const struct dmarcrep *rep, time_t now)
{
	return rep->end > now ? rep->end - now : 1;
}

void
dmarcrep_tick(struct dmarcrep *rep, time_t now)
{
	char from[PATH_MAX], to[PATH_MAX];
	uint64_t dropped;

	if (now < rep->end)
		return;
	pthread_mutex_lock(&rep->lock);
	if (rep->fd != -1)
		close(rep->fd);
	snprintf(from, sizeof(from), "%s/cur.%lld", rep->dir, (long long)rep->begin);
	snprintf(to, sizeof(to), "%s/done.%lld.%lld", rep->dir, (long long)rep->begin,
	    (long long)now);
	(void)rename(from, to);
	dropped = rep->dropped;
	rep->dropped = 0;
	open_current(rep, now);
	pthread_mutex_unlock(&rep->lock);
	if (dropped)
		log_warn("event=dmarc-report-dropped records=%" PRIu64 " reason=\"file limit or write error\"",
		    dropped);
	start_sender(rep);
}

void
dmarcrep_close(struct dmarcrep *rep)
{
	if (rep == NULL)
		return;
	if (rep->sending)
		pthread_join(rep->sender, NULL);
	if (rep->fd != -1)
		close(rep->fd);
	pthread_mutex_destroy(&rep->lock);
	free(rep);
}
