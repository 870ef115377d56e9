/*
 * rr — DNS wire format decoding (RFC 1035 section 4): names with
 * compression pointers, the RDATA of the record types tern uses, and a
 * whole answer message into a struct dns_answer. Pure functions over
 * (bytes, length); used by the libunbound resolver and the fuzzer.
 */
#ifndef TERN_DNS_RR_H
#define TERN_DNS_RR_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

#define DNS_PARSE_BADNAME (-2)	/* well-formed wire, characters we refuse */

/*
 * Decodes the name at offset off of msg into out (lower case, no trailing
 * dot, "" for the root). *next is the offset just past the name where it
 * sits (after its first compression pointer). Compression pointers must
 * point strictly backwards, so loops cannot happen. Returns 0; -1 if the
 * wire form is malformed; DNS_PARSE_BADNAME (with *next valid) if a label
 * holds other bytes than letters, digits, '-' and '_'.
 */
int dns_parse_name(const uint8_t *msg, size_t msglen, size_t off,
    char out[DNS_NAME_MAX + 1], size_t *next);

/*
 * Decodes the RDATA of one record of the given type into out (type, pref,
 * addr, data/len as dns.h describes; data is malloc'ed, the caller frees
 * it). rdata lies inside msg, against which compression pointers are
 * resolved; msg may be NULL when the RDATA stands alone (pointers then
 * resolve within rdata itself).
 * Returns 0, or -1 if malformed or unsupported (out->data is NULL then).
 */
int dns_parse_rdata(enum dns_type type, const uint8_t *rdata, size_t len,
    const uint8_t *msg, size_t msglen, struct dns_rr *out);

/*
 * Decodes a whole response to a query of type qtype: the RCODE gives the
 * status (SERVFAIL: TEMPFAIL, NXDOMAIN, others PERMFAIL), CNAMEs in the
 * answer section are followed from the question name (at most 8; canon is
 * the name reached), and the records of qtype owned by that name are
 * added. A malformed message gives DNS_PERMFAIL. Returns 0; -1 on ENOMEM.
 */
int dns_parse_msg(const uint8_t *msg, size_t len, enum dns_type qtype,
    struct dns_answer *out);

#endif
