/* bgsync — one descriptor's fsyncs on a thread (see bgsync.h). */
#include "common/bgsync.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define STACK_SIZE (64 * 1024)	/* the thread only calls fsync */

struct bgsync {
	pthread_mutex_t lock;
	pthread_cond_t  work;
	pthread_t       thread;
	int             fd;
	int             stop;
	uint64_t        asked;	/* the last ticket handed out */
	uint64_t        synced;	/* every ticket up to this one is covered */
};

static void *
run(void *arg)
{
	struct bgsync *s = arg;
	uint64_t t;
	int rc;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		if (s->asked == s->synced) {
			pthread_cond_wait(&s->work, &s->lock);
			continue;
		}
		t = s->asked;
		pthread_mutex_unlock(&s->lock);
		do
			rc = fsync(s->fd);
		while (rc == -1 && errno == EINTR);
		pthread_mutex_lock(&s->lock);
		/* A failed sync covers nothing (a commit meanwhile syncs for
		 * itself); tried again, but not in a tight loop. */
		if (rc == 0 && t > s->synced)
			s->synced = t;
		else if (rc == -1) {
			struct timespec pause = { 0, 10 * 1000 * 1000 };

			pthread_mutex_unlock(&s->lock);
			nanosleep(&pause, NULL);
			pthread_mutex_lock(&s->lock);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

struct bgsync *
bgsync_new(int fd)
{
	struct bgsync *s = calloc(1, sizeof(*s));
	pthread_attr_t attr;
	int rc;

	if (s == NULL)
		return NULL;
	s->fd = fd;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, STACK_SIZE);
	rc = pthread_create(&s->thread, &attr, run, s);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		pthread_cond_destroy(&s->work);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return NULL;
	}
	return s;
}

void
bgsync_free(struct bgsync *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = 1;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

uint64_t
bgsync_request(struct bgsync *s)
{
	uint64_t t;

	if (s == NULL)
		return 0;
	pthread_mutex_lock(&s->lock);
	t = ++s->asked;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	return t;
}

int
bgsync_covered(struct bgsync *s, uint64_t t)
{
	int r;

	if (s == NULL || t == 0)
		return 0;
	pthread_mutex_lock(&s->lock);
	r = s->synced >= t;
	pthread_mutex_unlock(&s->lock);
	return r;
}
