"""Fault injection: every function's AWS calls failing in every shape botocore can fail in.

The mechanism is tests/faults/injector.py (botocore's own event hooks, wrapped around moto's
stubber); the fixtures are in conftest.py (one moto world per module, wiped between cases); the
vocabulary shared by the matrices is matrix.py.

Shapes (injector.SHAPES), each on every attempt of a call; a throttle, and for a write a lost
answer, also on the first attempt only, so botocore's own retry (total_max_attempts=2) is what
meets the result:

    nothing sent        reset (ConnectionClosedError), read-timeout (ReadTimeoutError); on each
                        target's first call also unreachable (EndpointConnectionError) and
                        connect-timeout (ConnectTimeoutError)
    lost answer         processed by moto, then ConnectionClosedError (writes only)
    error answers       throttled (ThrottlingException, ProvisionedThroughputExceededException,
                        SlowDown), server-error (HTTP 500), denied (AccessDeniedException)
    throttled answers   of a BatchGetItem, unprocessed (every key handed back in UnprocessedKeys),
                        and of a TransactWriteItems, cancelled (TransactionCanceledException,
                        ThrottlingError): botocore retries neither, so on every call and on the
                        first only, the code's own retry following

Matrix: 9 functions (5 webhooks, the MQTT function, commands, outbox, sweep) x 75 calls x the
shapes that apply to each = 208 ingest + 94 commands + 118 outbox + 10 outbox with fan-out (its SNS
PublishBatch) + 92 sweep + 106 around a command waiting for the next contact (commands, outbox
and sweep) = 628 cases.
"""
