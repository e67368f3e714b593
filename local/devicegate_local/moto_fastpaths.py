"""Work moto repeats on the gateway's hot calls although its result cannot change, done once, in
the moto process of `devicegate local` (each measured on a face-terminal record under a burst).

Kept apart from moto.py's corrections (where moto departs from AWS): nothing here changes an
answer, only how often moto works it out.

- A ConditionExpression is parsed twice per conditional PutItem (once by the response handler to
  check the names it uses, once by the table to evaluate it), and every id marker and event put
  carries the same `attribute_not_exists(pk)`. The parsed tree only depends on the expression,
  its names and its values, and evaluating it changes nothing in it: it is kept, keyed on those
  three, for the next call.
- A PutItem from the functions' transport goes through werkzeug's request and response objects,
  URL routing, moto's generic request setup (a parse of the body against botocore's model) and
  its response serializer: measured, 0.8 ms per call of which moto's table work is 0.13 ms. The
  gateway's puts (event, id marker, device state) ask for nothing back, so the answer is `{}`;
  for them, moto's own PutItem handler runs on the JSON body directly. Whatever that handler
  refuses (a failed condition, an invalid item) it refuses before it writes anything, and the
  request then goes moto's whole way, which refuses it again and words the answer as moto does.
- A request's headers are a view over the WSGI environ, and every walk over them (moto walks an
  S3 PutObject's about fifty times: its metadata, its query string, the headers it hands the
  handler) walks the whole environ and renames each key again. They are listed once per request.
"""

from __future__ import annotations

import binascii
import functools
import io
import json
import os
import re
import threading
from collections import OrderedDict
from typing import Any

_PATCHED = "_devicegate_fast"
#: Distinct (expression, names, values) kept. The gateway's writes use a handful of expressions;
#: those with per-call values (a device id, a time) would otherwise grow the cache without end.
CONDITION_CACHE_SIZE = 512


def cache_condition_expressions() -> None:
    """Parse each distinct condition expression once (idempotent)."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    if getattr(ConditionExpressionParser.parse, _PATCHED, False):
        return
    original = ConditionExpressionParser.parse
    parsed: OrderedDict[tuple[str, str, str], tuple[Any, tuple[str, ...], tuple[str, ...]]] = OrderedDict()
    lock = threading.Lock()

    @functools.wraps(original)
    def parse(self: Any) -> Any:
        if not self.condition_expression:
            return original(self)
        try:
            key = (self.condition_expression,
                   json.dumps(self.expression_attribute_names, sort_keys=True),
                   json.dumps(self.expression_attribute_values, sort_keys=True))
        except TypeError:  # a value JSON cannot hold: parsed as moto does, not kept
            return original(self)
        with lock:
            hit = parsed.get(key)
            if hit is not None:
                parsed.move_to_end(key)
        if hit is None:
            # An invalid expression raises here each time, as it does in moto: only trees are kept.
            op = original(self)
            with lock:
                parsed[key] = (op, tuple(self.expr_attr_names_found), tuple(self.expr_attr_values_found))
                while len(parsed) > CONDITION_CACHE_SIZE:
                    parsed.popitem(last=False)
            return op
        op, names_found, values_found = hit
        # What the caller reads from the parser besides the tree (the names it checks were used).
        self.expr_attr_names_found.extend(names_found)
        self.expr_attr_values_found.extend(values_found)
        return op

    setattr(parse, _PATCHED, True)
    ConditionExpressionParser.parse = parse  # type: ignore[method-assign]


PUT_ITEM = "DynamoDB_20120810.PutItem"
_JSON_1_0 = "application/x-amz-json-1.0"
# moto's own rules for the caller's region and access key (BaseResponse.region_from_useragent_regex,
# access_key_regex); the host 127.0.0.1 never names a region.
_REGION_IN_USER_AGENT = re.compile(r"region/(?P<region>[a-z]{2}-[a-z]+-\d{1})")
_ACCESS_KEY = re.compile(r"AWS.*(?P<access_key>(?<![A-Z0-9])[A-Z0-9]{20}(?![A-Z0-9]))[:/]")


def put_item(environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes] | None:
    """moto's answer to a PutItem that asks for nothing back, or None for any other request (or
    one moto refuses): those go moto's whole way. Called with moto's DynamoDB lock held."""
    from moto.core.exceptions import ServiceException
    from moto.core.responses import gen_amzn_requestid_long
    from moto.dynamodb.responses import DynamoHandler
    from moto.iam.models import get_account_id_from, mark_account_as_visited
    from werkzeug.exceptions import HTTPException

    if environ.get("HTTP_X_AMZ_TARGET") != PUT_ITEM or environ.get("REQUEST_METHOD") != "POST":
        return None
    if environ.get("CONTENT_TYPE") != _JSON_1_0 or environ.get("HTTP_CONTENT_ENCODING"):
        return None
    stream = environ.get("wsgi.input")
    # Read without consuming it (the transport's environ holds a BytesIO): moto's way may need it.
    body = stream.getvalue() if isinstance(stream, io.BytesIO) else None
    # moto's model-driven parse decodes binary values from base64; json.loads would keep text.
    if not body or b'"B"' in body or b'"BS"' in body:
        return None
    params = json.loads(body)
    if (not isinstance(params, dict) or "Expected" in params or params.get("ReturnValues", "NONE") != "NONE"
            or params.get("ReturnConsumedCapacity", "NONE") != "NONE"):
        return None
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    region_match = _REGION_IN_USER_AGENT.search(environ.get("HTTP_USER_AGENT", ""))
    if region_match:
        region = region_match.group(1)
    elif "AWS4" in authorization:
        region = authorization.split(",")[0].split("/")[2]
    else:
        return None
    key_match = _ACCESS_KEY.search(authorization)
    access_key = key_match.group(1) if key_match else "AKIAEXAMPLE"
    account = (os.environ.get("MOTO_ACCOUNT_ID") or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
               or get_account_id_from(access_key))
    # What moto's request setup would find, minus its request recorder (off unless asked for
    # through moto's API, which the local stack never does).
    handler = DynamoHandler()
    handler.body = params
    handler.region = region
    handler.current_account = account
    mark_account_as_visited(account_id=account, access_key=access_key, service="dynamodb", region=region)
    try:
        result = handler.put_item()
    except (ServiceException, HTTPException):
        return None
    if result.result:  # cannot be, with nothing asked back: moto answers {} then
        raise RuntimeError(f"moto's PutItem answered {result.result!r} where {{}} was due")
    data = b"{}"
    headers = {"Content-Type": _JSON_1_0, "server": "amazon.com"}
    gen_amzn_requestid_long(headers)
    headers["x-amz-crc32"] = str(binascii.crc32(data))
    headers["Content-Length"] = str(len(data))
    return "200 OK", list(headers.items()), data


def listed_headers(environ: dict[str, Any]) -> Any:
    """moto's view of a request's headers (moto.core.request.EnvironHeaders: names, and the
    original names of S3 metadata keys) with the walk over the environ done once. Lookups still
    read the environ; the list is made again if a key is added to it (moto adds Host when a
    request has none)."""
    return _listed_headers_class()(environ)


@functools.cache
def _listed_headers_class() -> type:
    from moto.core.request import EnvironHeaders  # moto is imported by its own process only

    class ListedHeaders(EnvironHeaders):
        def __init__(self, environ: dict[str, Any]) -> None:
            super().__init__(environ)
            self._listed: list[tuple[str, str]] = []
            self._listed_size = -1

        def __iter__(self) -> Any:
            if self._listed_size != len(self.environ):
                self._listed = list(super().__iter__())
                self._listed_size = len(self.environ)
            return iter(self._listed)

    return ListedHeaders


def install() -> None:
    """Every fast path of this module (idempotent)."""
    cache_condition_expressions()
