/*
 * exitsig — what a process does before it frees its signal events at exit.
 * Freeing a libevent signal event restores the default action, so a late
 * SIGTERM (or SIGINT, SIGUSR1) from the parent would kill the process
 * halfway through its cleanup. They are blocked instead: the process
 * exits with them pending.
 */
#ifndef TERN_EXITSIG_H
#define TERN_EXITSIG_H

/* Blocks SIGTERM, SIGINT and SIGUSR1 in the calling thread (threads it
 * starts later inherit the mask). */
void exitsig_block(void);

#endif
