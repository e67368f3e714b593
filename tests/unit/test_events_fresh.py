"""events/ is generated from the vendor records by events/build.py; a stale file would let
`sam local invoke -e` and the tests feed something the code no longer produces."""

import subprocess
import sys

from tests.support import ROOT


def test_generated_events_match_their_records():
    result = subprocess.run([sys.executable, str(ROOT / "events" / "build.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
