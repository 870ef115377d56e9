/* exitsig — signals blocked for the exit path (see exitsig.h). */
#include "common/exitsig.h"

#include <pthread.h>
#include <signal.h>

void
exitsig_block(void)
{
	sigset_t ss;

	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGUSR1);
	(void)pthread_sigmask(SIG_BLOCK, &ss, NULL);
}
