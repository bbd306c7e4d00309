/*
 * kill_switch.c -- DISABLE_TELEMETRY, the environment's kill switch.
 *
 * The one owner of the rule: the SQL tick asks here before anything else
 * (without loading Python), and so does the Python code, through the same
 * SQL function.  It fails closed: set to anything but an explicit false
 * value -- empty, 0, false, no or off, in any case, surrounding white space
 * ignored -- the variable turns telemetry off.  A typo (DISABLE_TELEMETRY=ture)
 * therefore disables instead of leaving telemetry on.  Unset, it changes
 * nothing.
 */
#include "postgres.h"

#include <ctype.h>
#include <stdlib.h>

#include "fmgr.h"

#include "kill_switch.h"

#define KILL_SWITCH_VARIABLE "DISABLE_TELEMETRY"

static const char *const explicit_false[] = {"", "0", "false", "no", "off"};

static bool
kill_switch_disables(const char *value)
{
	const char *start = value;
	const char *end;
	size_t		length;

	if (value == NULL)
		return false;
	while (*start != '\0' && isspace((unsigned char) *start))
		start++;
	end = start + strlen(start);
	while (end > start && isspace((unsigned char) end[-1]))
		end--;
	length = end - start;
	for (int i = 0; i < (int) lengthof(explicit_false); i++)
		if (strlen(explicit_false[i]) == length && pg_strncasecmp(start, explicit_false[i], length) == 0)
			return false;
	return true;
}

/* The background worker's question: does the server's environment turn telemetry off? */
bool
telemetry_kill_switch_on(void)
{
	return kill_switch_disables(getenv(KILL_SWITCH_VARIABLE));
}

PG_FUNCTION_INFO_V1(telemetry_disabled_by_environment);

/*
 * _telemetry.disabled_by_environment(): whether DISABLE_TELEMETRY in the
 * server's environment turns telemetry off.  Being a function of this module,
 * calling it also loads the module, which declares telemetry.metrics_level in
 * a session where the module was not preloaded.
 */
Datum
telemetry_disabled_by_environment(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(telemetry_kill_switch_on());
}
