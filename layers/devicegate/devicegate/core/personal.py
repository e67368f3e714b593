"""Personal data in device records: what a deployment stores of it (docs/deploy.md "Personal data").

Face terminals and SenseLink send people's names, card and ID numbers, PIN codes, phone numbers,
face photos and body temperatures; any vendor may add such fields to a record (an extra field, a
nested object, JSON inside a string). The deployment chooses per category, with the template
parameter `PersonalData` (env PERSONAL_DATA), e.g. `id_number=mask,ic_number=mask,name=keep`:

- keep: stored as sent
- mask: stored with all but the last 4 characters replaced by `*` (shorter values: all `*`)
- drop: not stored at all

Credentials (`pin`, and passwords such as the Jointech lock's unlock `password`) are always
dropped, whatever the setting: a credential is not a record.

Fields are recognised by their key name alone, wherever they are (any vendor, any depth, in
lists, inside strings holding JSON), compared normalized: case-folded, with `_`, `-`, `.` and
spaces taken out, so `ID_NUMBER`, `idNumber`, `Id-Number` and `id number` are one name. Whole
names only (SPELLINGS lists them): `alarmName`, `deviceName` or `eventName` are not `name`.

The one matcher serves two places:
- every accepted record, in `make_event` (core/envelope.py, `scrub_event`): the policy is applied
  to the record's JSON before it is stored or published, and content-derived event ids are
  hashed from the record without any personal field (whatever the policy keeps);
- every refused payload, in `VendorAdapter.quarantine_body` (`scrub_payload`, `scrub_form`).

Nothing here is ever logged (the pipeline logs ids, kinds and field names, never values).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

from devicegate.core import deployment, jsonbody
from devicegate.core.caches import kept
from devicegate.core.errors import InvalidPayload
from devicegate.core.pairs import pairs

#: Categories the deployment chooses for. `photo`: face pictures (inline images become S3
#: objects, image ids/URLs stay references); `temperature`: body temperature. `pin` is accepted
#: in the setting for compatibility and always dropped.
CATEGORIES = ("name", "user_id", "id_number", "ic_number", "job_number", "mobile", "remark", "pin", "photo",
              "temperature")
ACTIONS = ("keep", "mask", "drop")
DEFAULT_SPEC = "id_number=mask,ic_number=mask"
#: Credentials: dropped whatever the setting (`password` is no category a deployment could keep).
ALWAYS_DROPPED = ("pin", "password")

#: Key names of each category, normalized (see `normalized`). Whole names: a key is personal
#: when its normalized name is one of these, never because it contains one. Checked against
#: every vendor's models and fixtures (tests/unit/test_personal_data.py): what is NOT here on
#: purpose is `pass` (the face terminal's "passage allowed"), `temperature` (Jointech's sensor),
#: `card` (a Jointech lock's swiped card: the lock's own access card, kept for apps),
#: `driverName`, `rfidNo`, `faceId` and `imageUrl` (Mettax's driver: kept, docs/deploy.md),
#: `token`/`clientToken` (command idempotency tokens), and any `...Name` of a code table.
SPELLINGS: dict[str, tuple[str, ...]] = {
    "pin": ("pin", "pincode", "pinnumber", "pinno", "userpin"),
    "password": ("password", "passwd", "pwd", "passcode", "passphrase", "unlockpassword", "lockpassword",
                 "doorpassword", "userpassword", "密码"),
    "id_number": ("idnumber", "idno", "idcard", "idcardno", "idcardnumber", "identitynumber", "identityno",
                  "identitycardnumber", "nationalid", "nationalidnumber", "passportnumber", "passportno",
                  "身份证号", "身份证号码", "证件号码"),
    "ic_number": ("icnumber", "icno", "iccard", "iccardno", "iccardnumber", "cardnumber", "cardno"),
    "name": ("name", "username", "fullname", "realname", "personname", "visitorname", "receptionusername",
             "姓名"),
    "user_id": ("userid", "receptionuserid", "personid", "visitorid"),
    "job_number": ("jobnumber", "jobno", "staffnumber", "staffno", "employeenumber", "employeeno", "employeeid",
                   "工号"),
    "mobile": ("mobile", "mobilenumber", "mobileno", "phone", "phonenumber", "phoneno", "telephone", "tel",
               "cellphone", "手机", "手机号", "手机号码", "电话"),
    "remark": ("remark", "remarks", "备注"),
    "photo": ("rgbimage", "alarmphoto", "avatar", "signavatar", "signbgavatar", "docphoto", "facephoto",
              "faceimage", "facepicture", "facepic"),
    "temperature": ("bodytemperature", "bodytemp"),
}
#: normalized key name -> category
NAMES: dict[str, str] = {name: category for category, names in SPELLINGS.items() for name in names}
#: Keys whose objects are groups (face terminal and SenseLink `groups`): a group's `name` says
#: "Staff" or "Visitors", not who someone is, so it is kept whatever `name`'s setting.
_GROUP_KEYS = frozenset({"group", "groups"})

_SEPARATORS = str.maketrans("", "", "_-. ")


# Cached: records of one vendor repeat the same few dozen keys, and the walk asks for each.
@lru_cache(maxsize=4096)
def normalized(key: str) -> str:
    """The name the matcher compares: case-folded, `_`, `-`, `.` and spaces taken out."""
    return key.casefold().translate(_SEPARATORS)


def category_of(key: str) -> str | None:
    """The personal-data category a field with this key name holds, or None."""
    return NAMES.get(normalized(key))


class PolicyError(ValueError):
    pass


@dataclass(frozen=True, eq=False)
class Matcher:
    """What to do with the fields of a set of key names, and a test for text that may hold one.

    `candidate` is the prefilter that keeps this off the hot path: a few passes in C over the
    record's JSON text (lower-cased and without separators, one bytes.translate; reversed; one
    regular expression), no parsing. Reversed, a key is `:"` + its name backwards + `"`, and that
    two-character start lets the expression skip straight from key to key instead of trying
    every name at every quote. It is sound, never the other way round: it may say yes for a
    record holding nothing personal (a value that is a name, a control character's escape), and
    the walk then finds nothing and keeps the text as it was; it never says no for a key that
    normalizes to a name, at any level of JSON inside strings (escaped quotes and whitespace
    escapes allowed between the name and its colon), and any `\\u` escape counts as a candidate,
    since JSON inside a string may spell a key with them (`"\\u0070in"`)."""

    actions: Mapping[str, str]  # normalized name -> "drop" | "mask"

    # Compiled on first use, not at import: a cold start pays only for the one it needs.
    @cached_property
    def _keys(self) -> re.Pattern[bytes]:
        """A key backwards, right after its colon: `:"nip"` (text without a backslash)."""
        return re.compile(rb':"' + self._backwards + rb'"')

    @cached_property
    def _escaped_keys(self) -> re.Pattern[bytes]:
        """The same in JSON inside strings: escaped quotes (`:"\\nip"`), and whitespace escapes
        between the key and its colon (JSON written with blanks); slower, so only for text
        holding a backslash."""
        return re.compile(rb':(?:[ntr]\\+)*"\\*' + self._backwards + rb'"')

    @cached_property
    def _backwards(self) -> bytes:
        return _alternation([name.encode()[::-1] for name in self.actions])

    def candidate(self, text: str) -> bool:
        if not self.actions:
            return False
        # ASCII text (str knows it without looking): lower-casing is case folding. Otherwise
        # casefold() first, so `PAßWORD` is found (ß folds to ss).
        data = text.encode("ascii") if text.isascii() else text.casefold().encode("utf-8", "surrogatepass")
        squashed = data.translate(_ASCII_LOWER, _SQUASHED)[::-1]
        if b"\\" not in squashed:
            return self._keys.search(squashed) is not None
        return b"u\\" in squashed or self._escaped_keys.search(squashed) is not None


_ASCII_LOWER = bytes(range(256)).lower()
#: Taken out before the prefilter looks: the separators names ignore, and blanks between tokens.
_SQUASHED = b"_-. \t\n\r"


def _alternation(words: list[bytes]) -> bytes:
    """A regular expression matching exactly `words`, factored by common starts (a trie): at
    each place it tries the few first bytes there are, not every word."""
    firsts: dict[bytes, list[bytes]] = {}
    for word in words:
        firsts.setdefault(word[:1], []).append(word[1:])
    ends = b"" in firsts
    branches = [re.escape(first) + _alternation(rests) for first, rests in sorted(firsts.items()) if first]
    if not branches:
        return b""
    if len(branches) == 1 and not ends:
        return branches[0]  # a run of single bytes stays a literal the engine compares at once
    body = b"(?:" + b"|".join(branches) + b")"
    return body + b"?" if ends else body


class Policy(dict[str, str]):
    """category -> keep | mask | drop for every category (credentials: drop), with its matcher."""

    @cached_property
    def matcher(self) -> Matcher:
        return Matcher({name: self[category] for name, category in NAMES.items() if self[category] != "keep"})


#: Every personal name dropped: what a content-derived event id is computed from.
IDENTITY = Matcher(dict.fromkeys(NAMES, "drop"))


def parse_policy(spec: str | None) -> Policy:
    """`id_number=mask,name=keep` -> {category: action} for every category (default keep)."""
    policy = Policy(dict.fromkeys(CATEGORIES, "keep"))
    for part, category, action in pairs(spec if spec is not None else DEFAULT_SPEC):
        if action is None or category not in CATEGORIES or action not in ACTIONS:
            raise PolicyError(f"bad personal data entry {part!r}: expected one of {', '.join(CATEGORIES)}"
                              f" = {'|'.join(ACTIONS)}")
        policy[category] = action
    policy.update(dict.fromkeys(ALWAYS_DROPPED, "drop"))
    return policy


@kept
def _default_policy() -> Policy:
    return parse_policy(None)


def deployment_policy() -> Policy:
    """PERSONAL_DATA (template parameter PersonalData), as infra.settings parsed it."""
    policy: Policy | None = deployment.setting("personal_data", None)
    return _default_policy() if policy is None else policy


def mask(value: Any) -> Any:
    """All but the last 4 characters hidden; enough for a person to recognise their own card."""
    if value is None:
        return None
    text = str(value)
    if not text:
        return text
    if len(text) <= 4:
        return "*" * len(text)
    return "*" * (len(text) - 4) + text[-4:]


# --- accepted records ----------------------------------------------------------------------------

def scrub_event(data_json: str, identity_json: str | None, derived: bool) -> tuple[str, str | None]:
    """(data_json, identity_json) of an accepted record with the deployment's policy applied.

    Called by make_event, which every event of every vendor passes through. `data_json` comes
    back with the policy's fields dropped or masked wherever they are; when nothing needed it,
    the very same text (the common case, found by the matcher's prefilter alone).

    `derived`: the event id is computed from content. It is then computed from the record
    without ANY personal field, whatever the policy keeps (`identity_json` comes back so): a
    retransmission gets the same id under any policy, the id carries no hash of a PIN or ID
    number (a short PIN could be found again from a hash of an otherwise stored record), and
    records differing only in personal data are the same record (the vendors with such
    ids send none of it in the fields that tell records apart)."""
    policy = deployment_policy()
    # IDENTITY's names include the policy's: one scan decides for both.
    if not (IDENTITY if derived else policy.matcher).candidate(data_json):
        return data_json, identity_json
    scrubbed = _scrub_json_text(data_json, policy.matcher)
    if not derived:
        return scrubbed, identity_json
    source = identity_json if identity_json is not None else data_json
    return scrubbed, _scrub_json_text(source, IDENTITY)


def _scrub_json_text(text: str, matcher: Matcher) -> str:
    document = json.loads(text)
    scrubbed = _scrub(document, matcher, MAX_NESTED_JSON)
    if scrubbed is document:
        return text
    # Key order kept (not sorted): the same input always gives the same text, whichever
    # transport brought it, and the record keeps its model's field order.
    return json.dumps(scrubbed, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# --- refused payloads ----------------------------------------------------------------------------

#: JSON inside a string inside a string...: levels of it read before the rest is summarized.
MAX_NESTED_JSON = 4
#: Characters of the summary's `shape` (it shows where a broken payload breaks, not its content).
MAX_SHAPE = 2048
#: Form fields read from a form body (Mettax sends one, `data`).
MAX_FORM_FIELDS = 64
_SHAPE = str.maketrans({**{c: "a" for c in string.ascii_letters}, **{c: "0" for c in string.digits}})
_NOT_ASCII = re.compile(r"[^\x20-\x7e\n\r\t]")


def scrub_payload(raw: bytes, policy: Policy) -> bytes:
    """A rejected JSON payload as quarantine may keep it: the policy applied to whatever shape it has.

    JSON is parsed (leniently: NaN, 1e999 and repeated keys do not stop the reading, as they are
    what got it refused) and personal fields are dropped or masked wherever they appear: at any
    depth, in lists, and inside strings holding JSON (at any level, up to MAX_NESTED_JSON), which
    are rewritten as JSON strings again. Keys are compared decoded, so `"\\u0070in"` is `pin`. A
    payload with nothing to scrub is kept byte for byte; otherwise it is re-serialized (same
    structure, compact), so a replay stores what ingest would have.

    Text that does not parse cannot be told apart into personal and other data (a regex cannot
    know which quote closes a field, nor read escapes), so none of it is kept: only `redacted`'s
    summary, which holds the original's SHA-256 (to match it against the sender's copy), its
    size and its shape. The same goes for a string inside the payload that names a personal key
    and does not parse. Never raises: a scrubbing failure keeps the summary.
    """
    if not raw.strip():
        return raw
    try:
        try:
            document, exact = jsonbody.loads_lenient(raw)
        except InvalidPayload:
            return _dumps(redacted(raw))
        scrubbed = _scrub(document, policy.matcher, MAX_NESTED_JSON)
        if exact and scrubbed is document:
            return raw
        # Not exact: a repeated key's first value is not in the document, and may be someone's
        # PIN, so the text is re-serialized from what was read even when nothing was scrubbed.
        return _dumps(scrubbed)
    except Exception as exc:  # a bug here must not keep a PIN: the summary holds none
        return _failed(raw, exc)


def scrub_form(raw: bytes, policy: Policy, charset: str = "utf-8") -> bytes:
    """A rejected form body (`application/x-www-form-urlencoded`) as quarantine may keep it: a
    field named like a personal field is dropped or masked, and each value is scrubbed like a
    string of a JSON payload (Mettax's `data=<json>`). Kept byte for byte when nothing needed it,
    re-encoded in its own charset otherwise; a body that is no form in that charset is kept as a
    summary. Never raises."""
    if not raw.strip():
        return raw
    try:
        try:
            pairs = parse_qsl(raw.decode(charset), keep_blank_values=True, encoding=charset, errors="strict",
                              max_num_fields=MAX_FORM_FIELDS)
        except (UnicodeDecodeError, ValueError, LookupError):
            return _dumps(redacted(raw))
        matcher = policy.matcher
        kept: list[tuple[str, Any]] = []
        for name, value in pairs:
            action = matcher.actions.get(normalized(name))
            if action == "drop":
                continue
            kept.append((name, mask(value) if action == "mask" else _scrub_string(value, matcher, MAX_NESTED_JSON)))
        if kept == pairs:
            return raw
        return urlencode(kept, encoding=charset).encode("ascii")
    except Exception as exc:
        return _failed(raw, exc)


def keep_unless_personal(raw: bytes, fields: list[tuple[str, str]] | None, policy: Policy) -> bytes:
    """A rejected body of named text fields this module cannot rewrite (multipart/form-data):
    kept byte for byte when no field is named like a personal field and no value may hold one,
    else (or when `fields` is None: it could not be read) kept as a summary only."""
    matcher = policy.matcher
    if fields is not None and not any(normalized(name) in matcher.actions or matcher.candidate(text)
                                      for name, text in fields):
        return raw
    return _dumps(redacted(raw))


def redacted(raw: bytes) -> dict[str, Any]:
    """What quarantine keeps of a payload it cannot read: nothing of its content.

    `sha256` (hex) and `bytes` identify the original (the sender, or a capture, has it); `shape`
    is its first MAX_SHAPE characters with every letter made `a`, every digit `0` and every other
    non-ASCII or control character `?`, punctuation and blanks kept: enough to see a truncated
    body or a missing comma, nothing of a name, number or PIN but its length. It is a JSON
    object, so a replay reads it and finds it still invalid."""
    text = raw[:MAX_SHAPE * 4].decode("utf-8", "replace")
    shape = _NOT_ASCII.sub("?", text[:MAX_SHAPE].translate(_SHAPE))
    return {"redacted": "not JSON: its personal data cannot be told apart, so only this summary is kept",
            "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw),
            "shape": shape + ("…" if len(text) > MAX_SHAPE else "")}


def _failed(raw: bytes, exc: Exception) -> bytes:
    from devicegate.infra.observability import logger

    logger.error("quarantine scrubbing failed; kept a summary only", extra={"error_type": type(exc).__name__})
    return _dumps(redacted(raw))


# --- the walk --------------------------------------------------------------------------------------

def _scrub(value: Any, matcher: Matcher, levels: int, in_group: bool = False) -> Any:
    """`value` with the matcher's actions applied everywhere in it: a new value when anything
    changed, else `value` itself (so "nothing to do" needs no deep comparison)."""
    if isinstance(value, dict):
        actions = matcher.actions
        out: dict[str, Any] = {}
        changed = False
        for key, item in value.items():
            name = normalized(key)
            action = actions.get(name)
            if action is not None and in_group and name == "name":
                action = None
            if action == "drop":
                changed = True
                continue
            if action == "mask":
                new = _masked(item)
            elif isinstance(item, (dict, list)):
                new = _scrub(item, matcher, levels, name in _GROUP_KEYS)
            elif isinstance(item, str) and '"' in item:  # no quote, no key: most values stop here
                new = _scrub_string(item, matcher, levels)
            else:
                new = item
            changed = changed or new is not item
            out[key] = new
        return out if changed else value
    if isinstance(value, list):
        items = [_scrub(item, matcher, levels, in_group) for item in value]
        return items if any(new is not old for new, old in zip(items, value, strict=True)) else value
    if isinstance(value, str):
        return _scrub_string(value, matcher, levels)
    return value


def _scrub_string(text: str, matcher: Matcher, levels: int) -> str:
    # Only text that names a candidate key is read as JSON: the rest cannot hold a personal field
    # (and text without a quote, most values, names no key at all).
    if '"' not in text or not matcher.candidate(text):
        return text
    if levels == 0:
        return _summary(text)
    try:
        inner, exact = jsonbody.loads_lenient(text)
    except InvalidPayload:
        return _summary(text)  # a broken record naming a personal key: its value may be in it
    if not isinstance(inner, (dict, list, str)):
        return text
    scrubbed = _scrub(inner, matcher, levels - 1)
    if exact and scrubbed is inner:
        return text
    return _dumps(scrubbed).decode("utf-8", "surrogatepass")


def _summary(text: str) -> str:
    return json.dumps(redacted(text.encode("utf-8", "surrogatepass")), ensure_ascii=False)


def _masked(value: Any) -> Any:
    # A masked field holding a structure has each of its values masked (an ID number in a list);
    # a stored photo's reference (core/envelope.py media_ref) stays: it names an object the
    # photo setting already decided on, and holds nothing of the picture.
    if isinstance(value, dict):
        if value.keys() == {"key", "contentType", "bytes"}:
            return value
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value if value in (None, "") else mask(value)


def _dumps(value: Any) -> bytes:
    # allow_nan: the refused NaN/Infinity stay as they came, so a replay refuses them again.
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): kept as its escape
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=True).encode()
