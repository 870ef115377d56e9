/* authcheck — SPF, DKIM and DMARC of one message and its A-R field (see authcheck.h). */
#include "mailauth/authcheck.h"

#include <stdio.h>
#include <string.h>

#include "mailauth/authres.h"

#define HEADER_MAX	16384	/* the field; authres_build caps each value */
#define ENTRIES_MAX	(DKIM_MAX_SIGS + 5)

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : addr;
}

static void
run_spf(const struct dns_resolver *dns, const struct authcheck_request *req,
    struct authcheck_result *out)
{
	struct spf_request sr;

	memset(&sr, 0, sizeof(sr));
	sr.helo = req->helo;
	sr.sender = req->mailfrom;
	sr.receiver = req->receiver;
	sr.now = (long long)req->now;
	if (spf_request_set_ip(&sr, req->ip) == -1) {
		/* Not from the network (should not happen on an mx listener). */
		out->spf.result = SPF_NONE;
		snprintf(out->spf.problem, sizeof(out->spf.problem), "no client address");
		out->helo = out->spf;
		return;
	}
	spf_check_mailfrom(dns, &sr, &out->spf);
	/* RFC 7208 2.3: the HELO identity too; for <> it is what was checked. */
	if (req->mailfrom[0] != '\0') {
		spf_check_helo(dns, &sr, &out->helo);
		out->helo_run = 1;
	} else
		out->helo = out->spf;
}

static void
run_dkim(const struct dns_resolver *dns, const struct authcheck_request *req,
    struct authcheck_result *out)
{
	struct dkim_verify_opts o;
	struct dkim_verify *v;
	size_t i;

	memset(&o, 0, sizeof(o));
	o.now = req->now;
	if ((v = dkim_verify_prepared(&o, req->hdr, req->hdrlen, req->body, req->nbody)) == NULL)
		return;
	if (dkim_verify_finish(v, dns) == 0)
		for (i = 0; i < dkim_verify_count(v) && i < DKIM_MAX_SIGS; i++)
			out->dkim[out->ndkim++] = *dkim_verify_result(v, i);
	dkim_verify_free(v);
}

static int
run_dmarc(const struct dns_resolver *dns, const struct orgdomain *od,
    const struct authcheck_request *req, struct authcheck_result *out)
{
	struct dmarc_dkim d[DKIM_MAX_SIGS];
	struct dmarc_input in;
	size_t i;

	memset(&in, 0, sizeof(in));
	/* 3.1.2: the SPF identity is MAIL FROM's domain, or HELO for <>. */
	snprintf(out->dmarc_spf_domain, sizeof(out->dmarc_spf_domain), "%s",
	    req->mailfrom[0] ? domain_of(req->mailfrom) : req->helo);
	in.spf_domain = out->dmarc_spf_domain;
	in.spf_result = dmarc_auth_from_str(spf_result_str(out->spf.result));
	for (i = 0; i < out->ndkim; i++) {
		d[i].d = out->dkim[i].domain;
		d[i].result = dmarc_auth_from_str(dkim_result_str(out->dkim[i].result));
	}
	in.dkim = d;
	in.ndkim = out->ndkim;
	in.pct_roll = req->pct_roll;
	out->dmarc_run = 1;
	return dmarc_check_message(dns, od, req->hdr, req->hdrlen, &in, &out->dmarc);
}

static int
build(const struct authcheck_request *req, struct authcheck_result *out)
{
	struct authres_entry e[ENTRIES_MAX];
	const struct dmarc_outcome *dm = &out->dmarc;
	size_t n = 0, i;

	authres_spf(&e[n++], spf_result_str(out->spf.result),
	    req->mailfrom[0] ? req->mailfrom : NULL, req->mailfrom[0] ? NULL : req->helo);
	if (out->helo_run)
		authres_spf(&e[n++], spf_result_str(out->helo.result), NULL, req->helo);
	for (i = 0; i < out->ndkim; i++) {
		const struct dkim_sig_result *r = &out->dkim[i];

		authres_dkim(&e[n], dkim_result_str(r->result), r->domain, r->selector, r->header_b);
		if (r->result != DKIM_PASS && r->reason[0])
			e[n].reason = r->reason;
		n++;
	}
	if (req->hdr != NULL && out->ndkim == 0)
		authres_dkim(&e[n++], "none", NULL, NULL, NULL);
	if (out->dmarc_run) {
		int pol = dm->policy_domain[0] != '\0';

		authres_dmarc(&e[n], dmarc_result_str(dm->result),
		    dm->header_from[0] ? dm->header_from : NULL,
		    pol ? dmarc_policy_str(dm->record.p) : NULL,
		    pol ? dmarc_policy_str(dm->record.sp) : NULL,
		    pol ? dmarc_policy_str(dm->disposition) : NULL);
		n++;
	}
	if (out->arc.cv != ARC_NONE) {
		const struct arc_result *a = &out->arc;

		/* oldest-pass: 0 when every AMS verified (IANA Email Authentication Methods) */
		authres_arc(&e[n], arc_cv_str(a->cv), req->ip, a->n,
		    a->cv != ARC_PASS ? -1 : a->oldest_pass <= 1 ? 0 : (int)a->oldest_pass);
		if (a->cv != ARC_PASS)
			e[n].reason = a->reason;
		n++;
	}
	authres_iprev(&e[n++], iprev_result_str(out->iprev.result), req->ip, out->iprev.name);
	return authres_build(&out->header, req->authserv_id, e, n);
}

int
authcheck_run(const struct dns_resolver *dns, const struct orgdomain *od,
    const struct authcheck_request *req, struct authcheck_result *out)
{
	memset(out, 0, sizeof(*out));
	buf_init(&out->header, HEADER_MAX);
	if (iprev_check(dns, req->ip, &out->iprev) == -1) {
		authcheck_result_free(out);
		return -1;
	}
	run_spf(dns, req, out);
	if (req->hdr != NULL) {
		run_dkim(dns, req, out);
		/* the result says fail if it could not be run; NONE: no ARC sets */
		if (req->arc != NULL)
			(void)arc_verify_header(req->hdr, req->hdrlen, req->arc, dns, NULL, &out->arc);
		if (run_dmarc(dns, od, req, out) == -1) {
			authcheck_result_free(out);
			return -1;
		}
	}
	if (build(req, out) == -1) {
		authcheck_result_free(out);
		return -1;
	}
	return 0;
}

void
authcheck_result_free(struct authcheck_result *r)
{
	buf_free(&r->header);
}

int
authcheck_unavailable(struct buf *out, const char *authserv_id, const char *mailfrom,
    const char *helo, int signed_msg, const char *why)
{
	struct authres_entry e[3];
	size_t n = 0;

	authres_spf(&e[n], "temperror", mailfrom[0] ? mailfrom : NULL, mailfrom[0] ? NULL : helo);
	e[n++].reason = why;
	if (signed_msg) {
		authres_dkim(&e[n], "temperror", NULL, NULL, NULL);
		e[n++].reason = why;
	}
	authres_dmarc(&e[n], "temperror", NULL, NULL, NULL, NULL);
	e[n++].reason = why;
	return authres_build(out, authserv_id, e, n);
}

static enum authcheck_verdict
act(enum authcheck_action a, enum authcheck_verdict refuse)
{
	return a == AC_REJECT ? refuse : a == AC_QUARANTINE ? AC_ACCEPT_QUARANTINE : AC_ACCEPT;
}

enum authcheck_verdict
authcheck_verdict(const struct authcheck_policy *p, enum spf_result spf,
    enum dmarc_result dmarc, enum dmarc_policy disposition)
{
	enum authcheck_verdict v = AC_ACCEPT, d = AC_ACCEPT;

	/* RFC 7208 8.4: a receiver may refuse a fail; RFC 7372 3.2 gives 5.7.23. */
	if (spf == SPF_FAIL && p->spf_fail == AC_REJECT)
		v = AC_REFUSE_SPF;
	/* RFC 7489 6.6.4/6.7: the disposition (after pct) of a failing message. */
	if (dmarc == DMARC_RESULT_FAIL && disposition == DMARC_POLICY_REJECT)
		d = act(p->dmarc_reject, AC_REFUSE_DMARC);
	else if (dmarc == DMARC_RESULT_FAIL && disposition == DMARC_POLICY_QUARANTINE)
		d = act(p->dmarc_quarantine, AC_REFUSE_DMARC);
	/* The strongest wins: a refusal, then quarantine. */
	if (v == AC_REFUSE_SPF)
		return v;
	return d;
}
