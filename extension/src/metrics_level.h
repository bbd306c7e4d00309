/*
 * metrics_level.h -- the setting telemetry.metrics_level (metrics_level.c).
 */
#ifndef TELEMETRY_METRICS_LEVEL_H
#define TELEMETRY_METRICS_LEVEL_H

/* Declares telemetry.metrics_level; called once, from _PG_init. */
extern void telemetry_define_metrics_level(void);

#endif							/* TELEMETRY_METRICS_LEVEL_H */
