"""Scheduled (template: DeviceSweepSchedule): marks silent devices offline, publishes records
whose parts stopped coming and times out commands that got no answer. See devicegate.sweep
(and devicegate.sweep.wiring)."""

from devicegate.core.timeutil import now_utc
from devicegate.infra.observability import logger, tracer
from devicegate.sweep.wiring import sweep


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    report = sweep().run(now_utc())
    logger.info("device sweep", extra={"devices": report.devices, "marked_offline": report.marked_offline,
                                       "parts_published": report.parts_published,
                                       "parts_incomplete": report.parts_incomplete,
                                       "commands_timed_out": report.commands_timed_out,
                                       "commands_expired": report.commands_expired,
                                       "command_attempts_closed": report.command_attempts_closed,
                                       "errors": report.errors})
    if report.errors:
        # Raised so the invocation counts as failed (Errors metric, SweepErrorAlarm); the next
        # run starts over, and everything it does is conditional, so nothing happens twice.
        raise RuntimeError(f"device sweep incomplete: {len(report.errors)} error(s)")
    return {"devices": report.devices, "markedOffline": report.marked_offline,
            "partsPublished": report.parts_published, "commandsTimedOut": report.commands_timed_out,
            "commandsExpired": report.commands_expired, "commandAttemptsClosed": report.command_attempts_closed}
