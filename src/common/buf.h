/*
 * buf — a byte buffer that carries its length and a hard size limit.
 * Growth is overflow-checked and never passes `max`: an append that would
 * is refused whole (returns -1) and leaves the buffer as it was.
 * The data is always followed by one NUL byte (not counted in len) so that
 * it can be logged, but no code may rely on it for wire data.
 */
#ifndef TERN_BUF_H
#define TERN_BUF_H

#include <stddef.h>

struct buf {
	char  *data;
	size_t len;
	size_t cap;
	size_t max;	/* hard limit on len */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* Appends n bytes; -1 (buffer unchanged) if len would pass max or on ENOMEM. */
int  buf_append(struct buf *b, const void *p, size_t n);
int  buf_appendc(struct buf *b, char c);
int  buf_appends(struct buf *b, const char *s);
int  buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Makes room for n more bytes in one allocation; -1 as buf_append. */
int  buf_room(struct buf *b, size_t n);
/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);

#endif
