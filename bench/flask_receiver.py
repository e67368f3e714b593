"""The yardstick of bench/backlog.py: a webhook receiver written the way Jointech's own documentation
writes one ("Webhook Server-Python Code": a Flask app whose routes print `request.json` and answer
a short text, started with `app.run`), doing nothing else.

    python bench/flask_receiver.py --port 9999

Two departures, both in its favour, so the comparison flatters it rather than the gateway: what
the routes print goes to a sink (os.devnull), not a terminal, and werkzeug's line per request is
off; a terminal's output speed would otherwise be what is measured. `app.run` serves with a
thread per connection (Flask's default since 1.0), as the sample does.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from flask import Flask, request

app = Flask(__name__)
SINK = open(os.devnull, "w", encoding="utf-8")  # open for the life of the process


def _received(what: str) -> str:
    if request.method == "POST":
        print("Data received from Webhook is: ", request.json, file=SINK)
    return f"Webhook received! {what}"


# The vendor's four routes, as its sample names them.
@app.route("/lock/lockevent", methods=["POST"])
def lock_lockevent() -> str:
    return _received("lockevent")


@app.route("/lock/Positiondata", methods=["POST"])
def lock_positiondata() -> str:
    return _received("Positiondata")


@app.route("/lock/alarm", methods=["POST"])
def lock_alarm() -> str:
    return _received("alarm")


@app.route("/lock/cmdresponse", methods=["POST"])
def lock_cmdresponse() -> str:
    return _received("cmdresponse")


# The paths the bench sends to the gateway, so the same requests can go to either.
@app.route("/hooks/<vendor>/<token>", methods=["POST"])
def hook(vendor: str, token: str) -> str:
    return _received(vendor)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app.run(host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
