/*
 * fault.h - named fault points for the fault matrix (make check-faults).
 *
 * The migration code calls fault_point("send:go") and the like at each step of its protocol.
 * Nothing happens unless the environment variable XLEXT_FAULT names that point:
 *
 *   XLEXT_FAULT=<side>:<phase>[=<action>][,...]
 *
 * side is send, recv or agent, phase one of those listed in xl-ext(1), FAULT INJECTION
 * (banner, header, ext, round-N, suspend, stream-end, ready, renamed, go, report, final on
 * the sender; banner, header, ext, round-N, received, ready, go, unpause, report, preempted
 * on the receiver) and haagent(8) (agent:hello), action kill (the default: SIGKILL, as a
 * crashed or OOM-killed process) or stop (SIGSTOP: a peer that goes silent with its sockets
 * open). The point logs one line on stderr
 * before it acts, so a test can tell which point fired. The variable is read by the process
 * that reaches the point; only whoever can set a root process's environment can use it.
 */
#ifndef XLEXT_COMMON_FAULT_H
#define XLEXT_COMMON_FAULT_H

/* Act if XLEXT_FAULT names point ("send:go"). */
void fault_point(const char *point);

/* Same for a numbered point: fault_point_n("send:round", 2) is "send:round-2". */
void fault_point_n(const char *point, unsigned n);

/*
 * The action XLEXT_FAULT (or spec, when not NULL) gives point: 0 none, 'k' kill, 's' stop;
 * -1 when spec is malformed. Pure: for tests.
 */
int fault_lookup(const char *spec, const char *point);

#endif
