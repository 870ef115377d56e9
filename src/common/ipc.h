/*
 * ipc — typed messages between tern's processes over AF_UNIX
 * SOCK_SEQPACKET socketpairs (one record per message, so no framing), with
 * an optional file descriptor passed alongside (SCM_RIGHTS).
 * A message is a header {type, reqid} and a payload built with ipc_put_*
 * and read back with ipc_get_*: bounds-checked getters that set an error
 * instead of reading past the end; ipc_get_end() refuses leftover bytes.
 * Sending never blocks: what the socket refuses waits in a queue.
 */
#ifndef TERN_IPC_H
#define TERN_IPC_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define IPC_MAX_MSG (128 * 1024)

struct event_base;
struct ipc;

struct ipc_msg {
	uint32_t       type;
	uint32_t       reqid;
	const uint8_t *data;
	size_t         len;
	size_t         off;
	int            fd;	/* passed descriptor or -1; the receiver owns it */
	int            bad;	/* a getter ran past the end */
};

/* Called per message; msg == NULL when the peer closed or failed. */
typedef void ipc_cb(struct ipc *ipc, struct ipc_msg *msg, void *arg);

struct ipc *ipc_new(struct event_base *base, int fd, ipc_cb *cb, void *arg);
void ipc_free(struct ipc *ipc);
/*
 * Sends a message at once when nothing waits, else queues it (fd, or -1, is
 * then duplicated); the caller keeps its own descriptor either way. 0 or -1.
 */
int  ipc_send(struct ipc *ipc, uint32_t type, uint32_t reqid, const void *payload,
    size_t len, int fd);
/* Pending output, in messages. */
size_t ipc_backlog(const struct ipc *ipc);

/* Payload building (into a buf) and reading. */
int  ipc_put_u32(struct buf *b, uint32_t v);
int  ipc_put_u64(struct buf *b, uint64_t v);
int  ipc_put_str(struct buf *b, const char *s);
int  ipc_put_bytes(struct buf *b, const void *p, size_t n);
uint32_t ipc_get_u32(struct ipc_msg *m);
uint64_t ipc_get_u64(struct ipc_msg *m);
/* Copies a string into out (NUL-terminated); marks the message bad if it does not fit. */
void ipc_get_str(struct ipc_msg *m, char *out, size_t outsz);
/* The same string in a buffer of its own size (free it); NULL (and m->bad) if over max octets. */
char *ipc_get_strdup(struct ipc_msg *m, size_t max);
/* Points at n-byte blob; *n set. */
const uint8_t *ipc_get_bytes(struct ipc_msg *m, size_t *n);
/* 0 if every getter stayed in bounds and nothing is left over. */
int  ipc_get_end(const struct ipc_msg *m);

/* A non-blocking, close-on-exec SOCK_SEQPACKET socketpair with large buffers. */
int  ipc_socketpair(int fds[2]);

#endif
