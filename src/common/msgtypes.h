/*
 * msgtypes — the message types exchanged between tern's processes (see
 * common/ipc.h for the framing). The payload of each is listed beside it,
 * in order; "str" is ipc_put_str, "u32" ipc_put_u32, "bytes" ipc_put_bytes.
 */
#ifndef TERN_MSGTYPES_H
#define TERN_MSGTYPES_H

enum msgtype {
	/* smtp worker -> queue */
	MSG_Q_OPEN = 1,		/* (none); reqid names the session */
	MSG_Q_ENV_PART,		/* str id, bytes envelope text (not the last part) */
	MSG_Q_COMMIT,		/* str id, bytes envelope text (last part), u32 flags (COMMIT_F_*) */
	MSG_Q_ABORT,		/* str id */
	/* queue -> smtp worker */
	MSG_Q_OPEN_OK,		/* str id; fd = the message file, opened for writing */
	MSG_Q_OPEN_FAIL,	/* u32 errno */
	MSG_Q_COMMIT_OK,	/* str id [, str spare id; fd = the spare, the worker's next message file] */
	MSG_Q_COMMIT_FAIL,	/* str id, u32 errno */
	/* queue -> deliver */
	MSG_D_DELIVER,		/* str id, u32 rcpt, str user, str domain, str sender, str prepend
				   (header fields to write first), u32 flags (DELIVER_F_*), u64 content length
				   (the spool file's envelope may follow); fd = content */
	/* deliver -> queue */
	MSG_D_RESULT,		/* u32 status (enum deliver_status), str text */
	/* parent -> queue */
	MSG_P_WORKER,		/* fd = queue's end of a new smtp worker channel */
	MSG_P_DELIVER,		/* fd = queue's end of a new deliver channel */
	/* smtp worker -> auth */
	MSG_A_CHECK,		/* str client address, str user, str password */
	/* auth -> smtp worker */
	MSG_A_RESULT,		/* u32 result (enum session_auth), u32 delay in ms before answering */
	/* parent -> auth: MSG_P_WORKER with the auth end of a worker channel */
	/* queue -> mta */
	MSG_M_RELAY,		/* str id, str sender, str domain, u64 size, u32 flags (1 8bit, 2 smtputf8,
				   4 may be DKIM-signed: an authenticated or local sender),
				   u32 ret, str envid, u32 n, then n x (u32 rcpt index, str address,
				   u32 notify, str orcpt), str prepend (header fields to send first),
				   u64 content length (the file's envelope may follow); fd = content */
	/* mta -> queue */
	MSG_M_RESULT,		/* str id, u32 1 if the peer took the DSN duty, u32 n, then n x
				   (u32 rcpt index, u32 code, str enhanced, str text, str remote host) */
	/* parent -> queue */
	MSG_P_MTA,		/* fd = queue's end of a new mta channel */
	/* smtp worker -> check (reqid names the session) */
	MSG_C_PART,		/* bytes: part of the header section (not the last) */
	MSG_C_CHECK,		/* u32 seq, str ip, str helo, str mailfrom, bytes header section
				   (the rest of it), bytes body verdicts (enum dkim_bodyv each),
				   bytes ARC body hashes (ARC_BODY_HASHES, or none) */
	/* check -> smtp worker */
	MSG_C_RESULT,		/* u32 seq, u32 spf (enum spf_result), u32 dmarc (enum dmarc_result),
				   u32 disposition (enum dmarc_policy), str Authentication-Results field */
	/* parent -> check: MSG_P_WORKER with the check end of a worker channel */
	/* queue -> parent (ternctl status); reqid names the waiting ternctl */
	MSG_Q_STATUS,		/* (none) */
	/* parent -> queue, same reqid */
	MSG_P_STATUS,		/* str text: "process PID ROLE USER", "listen ADDR MODE",
				   "connections N" lines */
	/* queue -> mta */
	MSG_M_JOURNAL,		/* (none); fd = the relay journal, opened for appending */
	/* parent -> queue, at a reload */
	MSG_P_CONFIG,		/* u32 generation; fd = a memfd holding the qconf encoding
				   (queue/qconf.h) of the new configuration */
};

enum deliver_status { DELIVER_OK = 0, DELIVER_TEMPFAIL = 1, DELIVER_PERMFAIL = 2 };

/* MSG_Q_COMMIT flags */
#define COMMIT_F_SPARE 1u	/* the worker has no spare file: send one with the answer */

/* MSG_D_DELIVER flags */
#define DELIVER_F_QUARANTINE 1u	/* into the junk folder */
#define DELIVER_F_LATER      2u	/* stored already, no client waits: may wait for a fuller batch */

#endif
