"""CONTRIBUTING.md "Adding a vendor" lists the files outside a vendor's folder that a vendor
touches: every vendor in the registry has each of them, and no vendor needs one the list omits."""

from __future__ import annotations

import re

import pytest

from devicegate.vendors import vendor_names
from tests.support import EVENTS, ROOT

GUIDE = (ROOT / "CONTRIBUTING.md").read_text()
SECTION = GUIDE[GUIDE.index("## Adding a vendor"):]
#: The numbered list: the files outside the vendor's own places.
LISTED = re.findall(r"^\d+\. `([^`]+)`", SECTION, flags=re.M)


def test_the_guide_lists_at_most_six_files_outside_a_vendors_own_places():
    assert 1 <= len(LISTED) <= 6, LISTED


@pytest.mark.parametrize("vendor", vendor_names())
def test_every_vendor_has_every_listed_file(vendor: str) -> None:
    module = vendor.replace("-", "_")
    # Given the guide's files for this vendor
    paths = [ROOT / p.replace("<module>", module).replace("<vendor>", vendor) for p in LISTED]
    # Then each exists, and the shared ones name the vendor
    assert [str(p) for p in paths if not p.exists()] == []
    assert f'webhook_handler("{vendor}")' in (ROOT / "functions" / f"{module}_webhook" / "app.py").read_text()
    assert f"(docs/vendors/{vendor}.md)" in (ROOT / "README.md").read_text()
    assert f"/hooks/{vendor}/" in (ROOT / "template.yaml").read_text()
    # And its own places exist: its package and its fixtures
    assert (ROOT / "layers/devicegate/devicegate/vendors" / module / "adapter.py").exists()
    assert list((EVENTS / vendor / "records").glob("*.json"))
