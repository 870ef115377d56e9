/*
 * fuzz_checkreq — the check process's decoding of a worker's request
 * (checkd_request_decode, MSG_C_CHECK): a worker is not trusted, so any
 * bytes must be refused or decoded within bounds. A decoded request is
 * encoded again as worker.c does (ipc_put_*): the encoding has one form,
 * so the bytes must come back exactly.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/ipc.h"
#include "server/checkd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static void
check_str(const char *s, size_t cap)
{
	CHECK(memchr(s, '\0', cap) != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct checkd_request rq;
	struct buf b;

	if (checkd_request_decode(data, size, &rq) == -1)
		return 0;
	check_str(rq.ip, sizeof(rq.ip));
	check_str(rq.helo, sizeof(rq.helo));
	check_str(rq.mailfrom, sizeof(rq.mailfrom));
	CHECK(rq.nbody <= DKIM_MAX_SIGS);
	CHECK(rq.hdrlen <= size);
	if (rq.hdrlen > 0)
		CHECK(rq.hdr >= data && rq.hdr + rq.hdrlen <= data + size);
	buf_init(&b, size + 64);
	CHECK(ipc_put_u32(&b, rq.seq) == 0);
	CHECK(ipc_put_str(&b, rq.ip) == 0);
	CHECK(ipc_put_str(&b, rq.helo) == 0);
	CHECK(ipc_put_str(&b, rq.mailfrom) == 0);
	CHECK(ipc_put_bytes(&b, rq.hdr, rq.hdrlen) == 0);
	CHECK(ipc_put_bytes(&b, rq.body, rq.nbody) == 0);
	CHECK(ipc_put_bytes(&b, rq.arc, rq.has_arc ? ARC_BODY_HASHES : 0) == 0);
	CHECK(b.len == size && memcmp(b.data, data, size) == 0);
	buf_free(&b);
	return 0;
}
