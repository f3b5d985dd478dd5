/* killpoint.h - named crash points for the kill tests. With SOP_TESTING,
 * SOP_KILL_POINT("name") raises SIGKILL at the nth pass through "name" when
 * the environment has SOP_KILLPOINT=name[:nth] (nth defaults to 1). */
#ifndef SOP_KILLPOINT_H
#define SOP_KILLPOINT_H
#ifdef SOP_TESTING
void sop__killpoint(const char *name);
#define SOP_KILL_POINT(name) sop__killpoint(name)
#else
#define SOP_KILL_POINT(name) ((void)0)
#endif
#endif
