"""`devicegate-onprem`: the tools that run on a customer's LAN, without the gateway's AWS and
Lambda dependencies (standard library and websockets only).

The same subcommands as `devicegate senselink-bridge | mqtt-bridge | face-terminal`, which a
machine with the whole project installed runs instead.
"""

from __future__ import annotations

import sys

_TOOLS = {
    "senselink-bridge": "devicegate_onprem.senselink_bridge:main",
    "mqtt-bridge": "devicegate_onprem.mqtt_bridge:main",
    "face-terminal": "devicegate_onprem.face_terminal:main",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in _TOOLS:
        print(f"usage: devicegate-onprem {{{','.join(_TOOLS)}}} ...", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    from importlib import import_module

    module, _, name = _TOOLS[argv[0]].partition(":")
    try:
        return getattr(import_module(module), name)(argv[1:])
    except KeyboardInterrupt:
        print("devicegate-onprem: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
