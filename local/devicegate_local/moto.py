"""moto as the local stack runs it, in a process of its own (MotoProcess, `main`): its WSGI app
behind a keep-alive HTTP server and behind the functions' socket (local_transport.py), and the
few places where moto departs from AWS in a way the local stack cannot live with, put right in
that process's moto (its servers share the process's backends).

A cancelled TransactWriteItems (a command refused because the device is unknown or over its rate
limit, a repeated clientToken, a device heard from while the sweep marked it offline) must leave
no trace, stream included. moto rolls back by putting a deep copy of each table, taken before the
transaction, in place of the table; the copy brings a copy of the stream shard. Two things follow:
every shard iterator handed out before (the stream poller's) keeps reading the old shard object,
which no write reaches any more, so the outbox stops for good; and the old shard keeps the
records of the writes that were rolled back, so the poller would deliver events that were never
stored. DynamoDB has one stream per table and writes nothing to it for a cancelled transaction.

A FIFO queue deduplicates within its DeduplicationScope, for five minutes after the first send,
whether or not the first message was deleted since. moto compares a new message with the
messages still in the queue, across the whole queue, by scanning all of them.

moto's DynamoDB reads (a Query walks the whole table; answers go through a generic serializer)
are made fast in moto_reads, installed here too.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import functools
import io
import logging
import os
import socket
import socketserver
import threading
import time
import traceback
from collections import OrderedDict
from http.server import HTTPServer
from typing import Any

from devicegate_local import moto_fastpaths, moto_reads

log = logging.getLogger("devicegate.local")

# Held around every DynamoDB and DynamoDB Streams call: moto's tables are plain dicts, and a Query
# on an index walks every item while another request may add one ("dictionary changed size
# during iteration", seen under a burst once calls ran at the same time); and a stream reader
# must not see the records of a transaction's first writes before the transaction stands.
_STREAM_LOCK = threading.RLock()
# S3's buckets are dicts too: a listing walks a bucket's keys while an upload may add one.
_S3_LOCK = threading.RLock()
_SERVICE_LOCKS = {"dynamodb": _STREAM_LOCK, "dynamodbstreams": _STREAM_LOCK, "s3": _S3_LOCK}


def service_lock(service: str | None) -> Any:
    """The lock a call to moto's `service` holds while moto works on it (none for SQS, whose
    long polls wait inside a call, and other services that keep no dict a call walks)."""
    return _SERVICE_LOCKS.get(service or "", contextlib.nullcontext())
_PATCHED = "_devicegate_keeps_streams"
# SQS: "messages sent with the same message deduplication ID are accepted successfully but aren't
# delivered during the 5-minute deduplication interval".
DEDUPLICATION_INTERVAL_MS = 5 * 60 * 1000
# Connections botocore keeps open between calls are closed after this long without a request.
MOTO_IDLE_TIMEOUT_S = 60.0
_LISTEN_BACKLOG = 1024
#: How long a thread keeps moto's interpreter while another waits (Python's default: 5 ms). The
#: functions' calls are short and wait on each other (a record's photo, id marker and event, one
#: after the other) while the outbox's, the stream reader's and HTTP clients' longer calls run in
#: the same process; with 5 ms a short call arriving behind a long one waited for up to that long
#: each time. Measured on two cores (bench/backlog.py --records 8000, three runs each, both
#: processes changed): 180-198 -> 186-205 records/s, answer p99 67-72 -> 58-63 ms.
SWITCH_INTERVAL_S = 0.0005


def keep_streams_through_cancelled_transactions() -> None:
    """Make a cancelled transaction leave each table's one stream shard as it was (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    if getattr(DynamoDBBackend.transact_write_items, _PATCHED, False):
        return
    original = DynamoDBBackend.transact_write_items

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with _STREAM_LOCK:
            shards = {name: (table.stream_shard, len(table.stream_shard.items))
                      for name, table in self.tables.items() if table.stream_shard is not None}
            try:
                return original(self, transact_items)
            finally:
                for name, (shard, length) in shards.items():
                    table = self.tables.get(name)
                    if table is not None and table.stream_shard is not shard:  # rolled back to the copy
                        del shard.items[length:]
                        shard.table = table
                        table.stream_shard = shard

    setattr(transact_write_items, _PATCHED, True)
    _replace(DynamoDBBackend, "transact_write_items", transact_write_items)
    for name in ("get_shard_iterator", "get_records"):
        _replace(DynamoDBStreamsBackend, name, _locked(getattr(DynamoDBStreamsBackend, name)))


def _replace(backend: type, name: str, method: Any) -> None:
    # Replaced on the class: the server's backends are this process's instances of it.
    setattr(backend, name, method)


def _locked(method: Any) -> Any:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _STREAM_LOCK:
            return method(*args, **kwargs)

    return locked


class InProcessStreams:
    """The three DynamoDB Streams calls the stream poller makes (describe_stream,
    get_shard_iterator, get_records, with botocore's names and answers), answered from moto's
    backend in this process.

    GetRecords over HTTP encodes every record, new image and all, through moto's generic response
    serializer, and botocore decodes it again: profiled under a burst, that was about half of the
    stack process's CPU. The records are the same ones GetRecords returns; iterators are plain
    positions, so none piles up in moto."""

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:  # noqa: N803 - botocore's names
        with _STREAM_LOCK:
            shard = _table_of_stream(StreamArn).stream_shard
            return {"StreamDescription": {"StreamArn": StreamArn, "Shards": [shard.to_json()] if shard else []}}

    def get_shard_iterator(self, StreamArn: str, ShardId: str, ShardIteratorType: str,  # noqa: N803
                           SequenceNumber: str | None = None) -> dict[str, str]:
        with _STREAM_LOCK:
            shard = _table_of_stream(StreamArn).stream_shard
            if shard is None or shard.id != ShardId:
                raise LookupError(f"{StreamArn} has no shard {ShardId}")
            if ShardIteratorType == "TRIM_HORIZON":
                start = shard.starting_sequence_number
            elif ShardIteratorType == "LATEST":
                start = shard.starting_sequence_number + len(shard.items)
            elif ShardIteratorType in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER") and SequenceNumber:
                start = int(SequenceNumber) + (ShardIteratorType == "AFTER_SEQUENCE_NUMBER")
            else:
                raise ValueError(f"shard iterator type {ShardIteratorType} needs what it cannot have here")
        return {"ShardIterator": f"{StreamArn}|{ShardId}|{start}"}

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:  # noqa: N803
        arn, shard_id, start = ShardIterator.rsplit("|", 2)
        with _STREAM_LOCK:
            shard = _table_of_stream(arn).stream_shard
            if shard is None or shard.id != shard_id:
                raise LookupError(f"{arn} has no shard {shard_id}")
            records = shard.get(int(start), Limit)
        following = int(records[-1]["dynamodb"]["SequenceNumber"]) + 1 if records else int(start)
        return {"Records": [_as_read(record) for record in records],
                "NextShardIterator": f"{arn}|{shard_id}|{following}"}


def _table_of_stream(stream_arn: str) -> Any:
    """arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL -> moto's table."""
    from moto.dynamodb.models import dynamodb_backends

    _, _, _, region, account, resource = stream_arn.split(":", 5)
    return dynamodb_backends[account][region].get_table(resource.split("/")[1])


def _as_read(record: dict[str, Any]) -> dict[str, Any]:
    # moto's own record, not a copy: copied where it differs, never changed. Its creation time is
    # a naive UTC datetime; GetRecords gives epoch seconds.
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime.datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.replace(tzinfo=datetime.UTC).timestamp())
    return {**record, "dynamodb": dynamodb}


# --------------------------------------------------------------------------- FIFO deduplication

_DEDUP_LOCK = threading.Lock()
_SENDING = threading.local()


def deduplicate_fifo_queues_by_scope() -> None:
    """FIFO deduplication as SQS does it (idempotent): within the queue's DeduplicationScope
    (`messageGroup`: the same id in two groups is two messages), for five minutes after the first
    send, deleted or not. Looked up by key instead of a scan of every message per send."""
    from moto.sqs.models import Queue, SQSBackend

    if getattr(Queue.add_message, _PATCHED, False):
        return
    original_add = Queue.add_message
    full_attributes: Any = Queue.__dict__["attributes"]  # the property itself

    @functools.wraps(original_add)
    def add_message(self: Any, message: Any) -> None:
        if self.lambda_event_source_mappings:  # moto's own Lambda integration; the stack plays its own
            original_add(self, message)
            return
        if self.fifo_queue and message.deduplication_id and _already_sent(self, message):
            return
        with self._messages_lock:
            self._messages.append(message)
            self._messages_lock.notify_all()

    def attributes(self: Any) -> dict[str, Any]:
        # A send reads one attribute (ContentBasedDeduplication), twice per message; moto builds
        # all of them each time, four by scanning every message in the queue.
        if getattr(_SENDING, "active", False):
            return {"ContentBasedDeduplication": "true" if self.content_based_deduplication else "false"}
        return full_attributes.fget(self)

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        # The same rule as moto's, which builds every attribute of the queue (and scans every
        # message four times) to read this one, for each message it hands out.
        retention_s = self.get_queue(queue_name).message_retention_period
        return retention_s + message.sent_timestamp / 1000 > time.time()

    setattr(add_message, _PATCHED, True)
    _replace(Queue, "add_message", add_message)
    _replace(Queue, "attributes", property(attributes))
    _replace(SQSBackend, "is_message_valid_based_on_retention_period", is_message_valid_based_on_retention_period)
    for name in ("send_message", "send_message_batch"):
        _replace(SQSBackend, name, _sending(getattr(SQSBackend, name)))


def redeliver_fifo_groups_in_order() -> None:
    """A FIFO group's messages back in order once their visibility timeout has passed, as SQS
    does. moto keeps such messages "pending" until a receive meets them, one at a time, and a group
    with a pending message delivers nothing: the first message met is held back by the second,
    which is then delivered first (a failed batch a1, a2 came back a2, a1). A message whose
    visibility timeout has passed is no longer in flight: it leaves the pending set whenever the
    set is read."""
    from moto.sqs.models import Queue

    current: Any = Queue.__dict__["pending_messages"]
    if getattr(current.fget, _PATCHED, False):
        return

    def pending_messages(self: Any) -> set[Any]:
        self._pending_messages.difference_update([m for m in self._pending_messages if m.visible])
        return self._pending_messages

    def pending_message_groups(self: Any) -> set[str]:
        return {m.group_id for m in pending_messages(self) if m.group_id is not None}

    setattr(pending_messages, _PATCHED, True)
    _replace(Queue, "pending_messages", property(pending_messages))
    _replace(Queue, "pending_message_groups", property(pending_message_groups))


def _already_sent(queue: Any, message: Any) -> bool:
    """Whether a message with this deduplication id (in this group, when the scope is the group)
    was sent less than five minutes before; records it when not."""
    key = ((message.group_id, message.deduplication_id) if queue.deduplication_scope == "messageGroup"
           else message.deduplication_id)
    now = message.sent_timestamp
    with _DEDUP_LOCK:
        sent: OrderedDict[Any, int] | None = getattr(queue, "_devicegate_sent", None)
        if sent is None:
            sent = OrderedDict()
            queue._devicegate_sent = sent
        while sent and now - next(iter(sent.values())) >= DEDUPLICATION_INTERVAL_MS:
            sent.popitem(last=False)  # recorded in send order: the oldest first
        if key in sent:
            return True
        sent[key] = now
        return False


def _sending(method: Any) -> Any:
    @functools.wraps(method)
    def sending(*args: Any, **kwargs: Any) -> Any:
        outer = getattr(_SENDING, "active", False)
        _SENDING.active = True
        try:
            return method(*args, **kwargs)
        finally:
            _SENDING.active = outer

    return sending


def skip_repeated_work() -> None:
    """Work moto repeats for every request although its result cannot change, done once or more
    cheaply (idempotent), each measured on the gateway's calls under a burst:

    - the folders of its own package, read from disk, and the backend of the Host header, matched
      against every service's URL patterns (it never matches 127.0.0.1), to route a request;
    - the method names of a response class, found with inspect.getmembers, to dispatch it;
    - a 52-character request id, drawn one random.choice at a time (6 % of an S3 PUT);
    - the size of a new item, re-measured whole (UTF-8 encoding included) as each attribute is
      added, to check DynamoDB's 400 KB once (8 % of a PutItem): now measured once, same limit."""
    import moto.backends as backends
    import moto.core.responses as responses
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    if getattr(responses.method_names_from_class, _PATCHED, False):
        return
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    method_names = functools.cache(responses.method_names_from_class)
    setattr(method_names, _PATCHED, True)
    responses.method_names_from_class = method_names

    find_backend = DomainDispatcherApplication.get_backend_for_host
    backend_of_host: dict[str | None, Any] = {}

    @functools.wraps(find_backend)
    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in backend_of_host:
            backend_of_host[host] = find_backend(self, host)
        return backend_of_host[host]

    _replace(DomainDispatcherApplication, "get_backend_for_host", get_backend_for_host)

    def gen_amzn_requestid_long(headerdict: dict[str, Any] | None = None) -> str:
        request_id = base64.b64encode(os.urandom(39)).decode("ascii").translate(_ALPHANUMERIC)
        if isinstance(headerdict, dict):
            headerdict["x-amzn-requestid"] = request_id
        return request_id

    responses.gen_amzn_requestid_long = gen_amzn_requestid_long

    def item_init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        values = {key: DynamoType(value) for key, value in attrs.items()}
        # moto's threshold ("the actual limit is between 409 and 410KB"), on the whole item.
        if sum(bytesize(key) + value.size() for key, value in values.items()) > 405000:
            raise ItemSizeTooLarge
        self.attrs = LimitedSizeDict(values)  # what is added later is still checked by moto's dict

    _replace(Item, "__init__", item_init)


# base64's two signs mapped to letters: moto's request ids are letters and digits.
_ALPHANUMERIC = str.maketrans("+/", "Zq")


# --------------------------------------------------------------------------- the server


def _moto_request_handler() -> type:
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    from devicegate_local.transport import call_wsgi

    class KeepAliveHandler(MotoRequestHandler):
        """moto's request handler, answering with a Content-Length so the connection stays open.

        werkzeug's development server closes the connection after every answer: each botocore
        call to moto then costs a new TCP connection and a new thread, and drains the socket for
        10 ms before closing. The body is read whole here, so the next request starts where
        this one ended."""

        protocol_version = "HTTP/1.1"
        timeout = MOTO_IDLE_TIMEOUT_S
        # Answers leave in one write; without TCP_NODELAY a kept-alive connection could still
        # wait for the client's delayed ACK.
        disable_nagle_algorithm = True

        def run_wsgi(self) -> None:
            # An `Expect: 100-continue` (botocore's S3 uploads) is answered by parse_request already.
            environ = self.make_environ()
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                body = environ["wsgi.input"].read()  # werkzeug's DechunkedInput
                environ.pop("HTTP_TRANSFER_ENCODING", None)
                environ.pop("wsgi.input_terminated", None)
            else:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length > 0 else b""
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            dispatcher: Any = self.server.app  # moto's DomainDispatcherApplication
            try:
                with service_lock(getattr(dispatcher.get_application(environ), "service", None)):
                    status, headers, data = call_wsgi(dispatcher, environ)
            except Exception:  # a bug in moto: say so, answer like a failing service, keep serving
                log.error("moto failed on %s %s:\n%s", self.command, self.path.split("?", 1)[0],
                          traceback.format_exc().rstrip())
                status, headers, data = "500 Internal Server Error", [("Content-Type", "text/plain")], b"moto failed"
            self._answer(status, headers, data)

        def _answer(self, status: str, headers: list[tuple[str, str]], data: bytes) -> None:
            code = int(status.split(" ", 1)[0])
            lines = [f"HTTP/1.1 {status}"]
            for name, value in headers:
                lowered = name.lower()
                if lowered in ("connection", "transfer-encoding") or (lowered == "content-length"
                                                                     and self.command != "HEAD"):
                    continue
                lines.append(f"{name}: {value}")
            if self.command != "HEAD" and code not in (204, 304) and not 100 <= code < 200:
                lines.append(f"Content-Length: {len(data)}")
            else:
                data = b""
            if self.close_connection:
                lines.append("Connection: close")
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            return  # the stream pollers alone make five requests a second

        def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            # An idle connection timing out is expected; nothing else reaches here from botocore.
            log.debug("moto server: " + format, *args)

    return KeepAliveHandler


class DirectDispatch:
    """moto's server-mode WSGI app without Flask's per-request machinery, for the functions'
    transport: the Flask app of the request's service (moto's own routing, once per service)
    matches the URL, and the view's moto handler is called as moto's Flask view calls it.
    Profiled under a burst, Flask's request context, response finalisation and CORS headers were
    a quarter of moto's CPU per call. A request this does not route (no rule, another kind of
    view) goes through the whole WSGI app, as over HTTP."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        from botocore.exceptions import ClientError
        from moto.core.utils import convert_to_flask_response
        from moto.moto_api import recorder
        from werkzeug.exceptions import HTTPException
        from werkzeug.wrappers import Response

        from devicegate_local.transport import call_wsgi

        if environ.get("HTTP_X_AMZ_TARGET") == moto_fastpaths.PUT_ITEM:
            with service_lock("dynamodb"):
                answer = moto_fastpaths.put_item(environ)
            if answer is not None:
                return answer
        service_app = self._app.get_application(environ)
        try:
            endpoint, _ = service_app.url_map.bind_to_environ(environ).match()
        except HTTPException:
            with service_lock(service_app.service):
                return call_wsgi(self._app, environ)
        view = service_app.view_functions.get(endpoint)
        if not isinstance(view, convert_to_flask_response):
            with service_lock(service_app.service):
                return call_wsgi(self._app, environ)
        request = service_app.request_class(environ)
        request.headers = moto_fastpaths.listed_headers(environ)
        try:
            recorder._record_request(request)
            with service_lock(service_app.service):
                result = view.callback(request, request.raw_url, dict(request.headers))
        except ClientError as exc:  # as moto's Flask view answers it
            result = 400, {}, exc.response["Error"]["Message"]
        except HTTPException as exc:  # moto's service errors, as Flask would render them
            return f"{exc.code} {exc.name}", exc.get_headers(environ), exc.get_body(environ).encode()
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        response = Response(response=content, status=status, headers=headers)
        if request.method == "HEAD" and "content-length" in headers:
            response.headers["Content-Length"] = headers["content-length"]
        return response.status, response.headers.to_wsgi_list(), response.get_data()


class _MotoHttpServer(socketserver.ThreadingMixIn, HTTPServer):
    """What moto's request handler reads from werkzeug's server, on the standard library's."""

    daemon_threads = True
    request_queue_size = _LISTEN_BACKLOG
    allow_reuse_address = True
    multithread = True
    multiprocess = False
    passthrough_errors = False
    ssl_context = None

    def __init__(self, host: str, port: int, app: Any, handler: type) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.app = app
        super().__init__((host, port), handler)

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
        log.debug("moto server %s: " + message, type, *args)


def patch_as_the_local_stack() -> None:
    """Every change above, in this process's moto (what MotoServer runs; bench/console.py times
    the console's pages against it in process)."""
    keep_streams_through_cancelled_transactions()
    deduplicate_fifo_queues_by_scope()
    redeliver_fifo_groups_in_order()
    skip_repeated_work()
    moto_fastpaths.install()
    moto_reads.install()


class MotoServer:
    """moto's server on `host:port`, bound on construction (a busy port raises OSError there)."""

    def __init__(self, host: str, port: int) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        patch_as_the_local_stack()
        self._server = _MotoHttpServer(host, port, DomainDispatcherApplication(create_backend_app),
                                       _moto_request_handler())
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def app(self) -> Any:
        """moto's WSGI app (the same backends)."""
        return self._server.app

    @property
    def dispatch(self) -> DirectDispatch:
        """moto's app for the functions' transport (local_transport.py)."""
        return DirectDispatch(self._server.app)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()


# --------------------------------------------------------------------------- moto's own process


READY_LINE = "moto: ready"


class MotoProcess:
    """moto in a process of its own, started by `devicegate local`: its HTTP server on
    `host:port` and the socket (`socket_path`) through which the functions and the stream
    pollers reach it. moto is most of the stack's CPU under load; in its own process it runs
    beside the HTTP front end, the pollers and the invocations instead of sharing one GIL with
    them."""

    def __init__(self, host: str, port: int, socket_path: str, timeout_s: float = 60.0) -> None:
        import subprocess
        import sys

        self.port = port
        self.socket_path = socket_path
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devicegate_local.moto", "--host", host, "--port", str(port),
             "--socket", socket_path, "--parent", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
        )
        self._ready = False
        settled = threading.Event()  # ready, or its output ended (it exited)
        threading.Thread(target=self._follow, args=(settled,), name="moto-output", daemon=True).start()
        if not settled.wait(timeout_s) or not self._ready:
            self.stop()
            raise OSError(f"moto did not start on {host}:{port} (its own message, if any, is above)")

    def _follow(self, settled: threading.Event) -> None:
        import sys

        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.strip() == READY_LINE:
                self._ready = True
                settled.set()
            else:  # whatever else moto prints, where the stack's own output goes
                sys.stdout.write(line)
                sys.stdout.flush()
        settled.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        import subprocess

        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def main(argv: list[str]) -> int:
    """moto's process: its server and the functions' socket until SIGTERM or the stack is gone."""
    import argparse
    import signal
    import sys

    from devicegate_local.transport import TransportServer

    parser = argparse.ArgumentParser(prog="python -m devicegate_local.moto")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    # Ctrl-C in the stack's terminal reaches its whole process group: the stack stops moto last,
    # after the functions that may still be calling it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("devicegate local: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        server = MotoServer(args.host, args.port)
    except OSError as exc:
        print(f"devicegate local: moto cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
        return 3
    server.start()
    transport = TransportServer(server.dispatch, args.socket, streams=InProcessStreams())
    transport.start()
    print(READY_LINE, flush=True)
    # A stack killed without cleaning up (SIGKILL) cannot stop moto: moto notices it is gone.
    while not stop.wait(1.0):
        if os.getppid() != args.parent:
            break
    transport.stop()
    server.stop()
    return 0


if __name__ == "__main__":
    import sys

    # Through the module's importable name: run as __main__, this file would be a second copy of
    # the module, with locks and patches of its own.
    from devicegate_local.moto import main as moto_main

    sys.exit(moto_main(sys.argv[1:]))
