"""Work moto repeats on the gateway's hot calls although its result cannot change, done once, in
the moto process of `devicegate local` (each measured on a face-terminal record under a burst).

Kept apart from moto.py's corrections (where moto departs from AWS): nothing here changes an
answer, only how often moto works it out.

- A ConditionExpression is parsed twice per conditional PutItem (once by the response handler to
  check the names it uses, once by the table to evaluate it), and every id marker and event put
  carries the same `attribute_not_exists(pk)`. The parsed tree only depends on the expression,
  its names and its values, and evaluating it changes nothing in it: it is kept, keyed on those
  three, for the next call.
"""

from __future__ import annotations

import functools
import json
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


def install() -> None:
    """Every fast path of this module (idempotent)."""
    cache_condition_expressions()
