"""Vendor adapters by name. Adding a vendor: a package here and one line in `_ADAPTERS`."""

from __future__ import annotations

from importlib import import_module

from devicegate.core.adapter import VendorAdapter
from devicegate.core.caches import kept

# Imported lazily: a function loads only its own vendor's models (cold start).
_ADAPTERS = {
    "ai-camera": "devicegate.vendors.ai_camera.adapter:AiCameraAdapter",
    "face-terminal": "devicegate.vendors.face_terminal.adapter:FaceTerminalAdapter",
    "jointech": "devicegate.vendors.jointech.adapter:JointechAdapter",
    "mettax": "devicegate.vendors.mettax.adapter:MettaxAdapter",
    "senselink": "devicegate.vendors.senselink.adapter:SenseLinkAdapter",
}


def vendor_names() -> list[str]:
    return sorted(_ADAPTERS)


@kept
def get_adapter(vendor: str) -> VendorAdapter:
    try:
        module, _, name = _ADAPTERS[vendor].partition(":")
    except KeyError:
        raise KeyError(f"unknown vendor {vendor!r}; known: {', '.join(vendor_names())}") from None
    return getattr(import_module(module), name)()


def state_patch_for(event: dict) -> dict:
    """The latest-state groups a stored event updates, by its vendor's adapter."""
    vendor = event.get("vendor")
    return get_adapter(vendor).state_patch(event) if vendor in _ADAPTERS else {}


def alarm_transition_for(event: dict):
    """The alarm lifecycle step a stored alarm event is, by its vendor's adapter (or None)."""
    vendor = event.get("vendor")
    return get_adapter(vendor).alarm_transition(event) if vendor in _ADAPTERS else None


def command_reply_for(event: dict):
    """What a stored event says about a command sent to its device, by its vendor's adapter (or None)."""
    vendor = event.get("vendor")
    return get_adapter(vendor).command_reply(event) if vendor in _ADAPTERS else None
