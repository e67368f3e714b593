"""Jointech code tables, read from the vendor's "Webhook and MQTT" push specification.

The tables map the integer codes found in Jointech pushes (``alarmType``,
``eventType``, ``unLockType``, slave ``sensorType``/``eventType``, ``locType`` and
the ``networkType``/``reportType`` extension fields) to the vendor's English names,
with export damage repaired and capitalisation made sentence case.
"""

from devicegate.core.validation import name_of  # noqa: F401  (models call codes.name_of)
from devicegate.core.vocabulary import Severity

# Alarm types ("Alarm Type Description"). The spec has two copies: the webhook
# section and the MQTT section. Both list the same 124 codes with identical names;
# only the webhook copy has 10000 "Custom alarm", which is kept here (125 codes).
# Names are the vendor's, in sentence case (e.g. "Speeding Alarm" -> "Speeding alarm",
# "device LCD or display failure" -> "Device LCD or display failure"). Gaps in the
# numbering (14, 16-18, 20-22, ...) are not defined by the spec.
ALARM_TYPES: dict[int, str] = {
    1: "Speeding alarm",
    2: "Fatigue driving",
    3: "Danger warning",
    4: "GNSS module failure",
    5: "GNSS antenna not connected or cut off",
    6: "GNSS antenna short circuit",
    7: "Device main power supply under voltage",
    8: "Power failure of device main power supply",
    9: "Device LCD or display failure",
    10: "TTS module failure",
    11: "Camera fault",
    12: "IC card module failure",
    13: "Speeding warning",
    15: "Power failure",
    19: "Overtime parking",
    23: "Route deviation alarm",
    24: "Vehicle VSS failure",
    26: "Vehicle theft",
    27: "Illegal vehicle ignition",
    28: "Illegal vehicle displacement",
    29: "Collision warning",
    30: "Rollover warning",
    31: "Illegal door opening alarm",
    32: "Video signal loss alarm",
    33: "Video signal blocking alarm",
    34: "Storage unit failure alarm",
    35: "Other video equipment fault alarm",
    36: "Passenger train overload alarm",
    37: "Abnormal driving behavior alarm",
    38: "Video recording reaches storage threshold alarm",
    40: "Lock rope cut",
    41: "Vibration",
    42: "Long-time unlocking",
    43: "Unlock password error for 5 consecutive times",
    44: "Swiping illegal RFID card",
    45: "Low power",
    46: "Back cover opened",
    47: "Motor stuck",
    48: "Enter fence alarm",
    49: "Exit fence alarm",
    50: "Enable backup battery",
    51: "SOS",
    52: "Towing alarm",
    54: "Fuel level change alarm",
    55: "Enter hot spot alarm",
    56: "Exit hot spot alarm",
    57: "Access road alarm",
    58: "Exit road alarm",
    63: "Temperature and humidity alarm",
    64: "Forward collision alarm",
    65: "Lane departure alarm",
    66: "Too close distance alarm",
    67: "Pedestrian collision alarm",
    68: "Frequent lane change alarm",
    69: "Road sign overrun alarm",
    70: "Obstacle alarm",
    71: "Road sign recognition events",
    72: "Active capture event",
    73: "Lane changing of solid line",
    74: "Pedestrian monitoring in car aisle",
    92: "Fatigue driving alarm",
    93: "Call the police",
    94: "Smoking alarm",
    95: "Distracted driving alarm",
    96: "Driver abnormal alarm",
    97: "Auto capture events",
    98: "Driver change event",
    99: "Probe blocked",
    100: "Overtime driving",
    101: "Not wearing seat belt",
    102: "Infrared blocking sunglasses failure",
    103: "Hands off the steering wheel",
    104: "Playing with phone",
    110: "Tire pressure alarm",
    125: "Rear approach alarm",
    126: "Left rear approach alarm",
    127: "Right rear approach alarm",
    131: "Rapid acceleration",
    132: "Emergency deceleration",
    133: "Emergency turning",
    134: "Idle alarm",
    135: "Abnormal flameout",
    136: "Neutral skid alarm",
    137: "Engine overspeed",
    141: "Overspeed",
    145: "Excess load of vehicle",
    146: "Excess load of road",
    151: "Height limit alarm",
    160: "Safety belt alarm",
    161: "Emergency brake alarm",
    162: "Neutral skating",
    163: "GPRS reconnection",
    164: "Dispatching panel connection",
    165: "Dispatch panel disconnected",
    166: "CANbus disconnection alarm",
    167: "CANbus fault code upload alarm",
    168: "Limit drive alarm",
    180: "Host dismantling",
    190: "Damage of upper cover",
    191: "GPS antenna interference",
    192: "Low power sleep alarm",
    193: "Device exception",
    194: "Unlock password error",
    195: "Do not perform unlocking without positioning",
    196: "No unlocking outside the fence",
    197: "Attitude alarm",
    198: "Slave sensor signal lost",
    199: "Supervision status forbids unlocking",
    200: "Main battery replacement",
    201: "Self-check exception",
    202: "Not enough storage space",
    203: "Lock bar bent",
    204: "Chain saw off",
    205: "Lock bar missing",
    206: "Forbidden to unlock in the sealed state",
    316: "Light alarm",
    332: "Pressure alarm",
    400: "Idling alarm",
    402: "Fence stop alarm",
    403: "Out fence unlock",
    404: "Departure delay warning",
    405: "Departure delay alarm",
    406: "Late warning",
    407: "Late alarm",
    10000: "Custom alarm",
}

# Event types ("Event Type Description", webhook section; the MQTT section refers
# to the same list). 19 is "Press the unlocking button" on JT705A/JT705C.
EVENT_TYPES: dict[int, str] = {
    1: "Unlock",
    2: "Lock",
    3: "Sealing of exit area",
    4: "Unblock the entrance area",
    5: "Open box (door)",
    6: "Close box (door)",
    7: "Bluetooth sealing",
    8: "Bluetooth unblocking",
    9: "Remote sealing",
    10: "Remote unsealing",
    11: "Snap photos",
    12: "Timed shooting",
    13: "Leave the starting point",
    14: "Reach the destination",
    15: "Leave the destination",
    16: "Complete the waybill",
    17: "Entry waypoint",
    18: "Leave waypoint",
    19: "Pull out the locking rope / press the unlocking button (JT705A/JT705C)",
    20: "Enter the starting point",
    10000: "Custom event",
}

# Event field ``unLockType`` (only for lock on/off events). -1 appears only in the
# webhook field table; the MQTT table and the code samples list 1..6.
UNLOCK_TYPES: dict[int, str] = {
    -1: "Locked",
    1: "Swipe card to unlock",
    2: "Remote unlock",
    3: "Bluetooth unlock",
    4: "Cut rope to unlock",
    5: "SMS unlock",
    6: "Regional trigger",
}

# Slave lock (sensor) field ``sensorType``: the slave device model.
SENSOR_TYPES: dict[int, str] = {
    1: "JT126",
    4: "JT709",
    5: "JT801",
    6: "JT802",
}

# Slave lock (sensor) field ``eventType``. The spec writes "8/20" for one entry, so
# both codes share a name; 11-13 are not defined. "waring" in 2 is fixed to "warning".
SLAVE_EVENT_TYPES: dict[int, str] = {
    -1: "None",
    0: "Lock event",
    1: "BLE unlock event",
    2: "Open back cover warning",
    3: "Lora unlock event",
    4: "Lock rope cut warning",
    5: "Key wake up event",
    6: "Heartbeat packet",
    7: "Charging report event",
    8: "Pull out the lock rope event",
    9: "RFID unlock event",
    10: "Illegal RFID unlock warning",
    14: "Sub lock signal lost warning",
    15: "Valve closed event",
    16: "Valve open event",
    17: "Low battery warning",
    18: "Anti-disassembly",
    19: "Disassembly of electronic compartment",
    20: "Pull out the lock rope event",
    21: "Lock rope insertion",
    22: "Bluetooth connection",
    23: "Open emergency storage warning",
    24: "Close emergency storage warning",
    25: "Valve abnormally open warning",
    26: "Turn off the knob event",
    27: "Turn on the knob event",
    28: "Unlocking error",
    29: "Abnormal motor",
    30: "NFC trigger",
}

# Location field ``locType`` ("Positioning type"). The spec says only "Cells
# positioning" for 3; it does not mention Wi-Fi.
LOC_TYPES: dict[int, str] = {
    0: "No positioning",
    1: "GPS positioning",
    2: "Base station positioning",
    3: "Cells positioning",
}

# Extension info ``networkType`` (sent as a string in ``expandInfo``; the spec's
# code comments read "4:4: G", the field table "4:4G").
NETWORK_TYPES: dict[int, str] = {
    0: "Unknown",
    1: "1G",
    2: "2G",
    3: "3G",
    4: "4G",
    5: "5G",
}

# Extension info ``reportType`` ("Data type").
REPORT_TYPES: dict[int, str] = {
    0: "Real-time",
    1: "Supplementary report",
    2: "Alarm",
}


#: Alarm codes that call for action now (core/vocabulary.py severity `critical`): theft, tamper,
#: forced or illegal opening, collision, SOS. Fence, road and hot-spot crossings are `info`;
#: every other alarm is a `warning`.
CRITICAL_ALARMS = frozenset({8, 15, 26, 27, 28, 29, 30, 31, 40, 43, 44, 46, 51, 52, 64, 67, 93})
INFO_ALARMS = frozenset({48, 49, 50, 55, 56, 57, 58, 71, 72})


def alarm_severity(code: int | None) -> Severity:
    if code in CRITICAL_ALARMS:
        return "critical"
    return "info" if code in INFO_ALARMS else "warning"
