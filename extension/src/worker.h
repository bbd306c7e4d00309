/*
 * worker.h -- the background worker: a launcher that visits each database in
 * turn through a short-lived visitor, and the state they share with the
 * utility hook (which stops a visit that would make a DBA's command fail).
 */
#ifndef TELEMETRY_WORKER_H
#define TELEMETRY_WORKER_H

#include "postgres.h"

/* worker_launcher.c */
extern void telemetry_define_tick_interval(void);
extern void telemetry_register_launcher(void);

/* worker_state.c: which database is being visited, and by which process */
extern void telemetry_request_worker_state(void);
extern bool telemetry_visit_begin(Oid dboid);
extern void telemetry_visit_started(pid_t pid);
extern void telemetry_visit_end(void);
extern bool telemetry_visit_refused(Oid dboid);
extern void telemetry_visit_failed(void);
extern bool telemetry_visit_has_failed(void);
extern void telemetry_stop_visit_of(Oid dboid);

/* utility_hook.c */
extern void telemetry_install_utility_hook(void);

#endif
