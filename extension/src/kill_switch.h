/* kill_switch.h -- DISABLE_TELEMETRY, read with the fail-closed rule (kill_switch.c). */
#ifndef TELEMETRY_KILL_SWITCH_H
#define TELEMETRY_KILL_SWITCH_H

extern bool telemetry_kill_switch_on(void);

#endif
