"""The matrix sizes the docstrings state are the ones that run (a docstring is what a reviewer reads)."""

from __future__ import annotations

import re

import tests.faults as package
from tests.faults import (
    test_command_faults,
    test_fanout_faults,
    test_ingest_faults,
    test_outbox_faults,
    test_sweep_faults,
    test_waiting_command_faults,
)

MATRICES = {test_ingest_faults: [test_ingest_faults.CASES],
            test_command_faults: [test_command_faults.POST_CASES, test_command_faults.RESEND_CASES,
                                  test_command_faults.GET_CASES],
            test_outbox_faults: [test_outbox_faults.STREAM_CASES, test_outbox_faults.REDRIVE_CASES],
            test_sweep_faults: [test_sweep_faults.CASES],
            test_fanout_faults: [test_fanout_faults.CASES],
            test_waiting_command_faults: [test_waiting_command_faults.CASES,
                                          test_waiting_command_faults.COMMAND_CASES]}


def stated(doc: str | None) -> int:
    [count] = re.findall(r"= (\d+) cases\.", doc or "")
    return int(count)


def test_each_module_states_its_own_number_of_cases_and_the_package_their_sum():
    # Given the matrices as they are parametrized
    counts = {module: sum(len(cases) for cases in groups) for module, groups in MATRICES.items()}
    # Then each module's docstring states its count, and the package docstring the total
    for module, count in counts.items():
        assert stated(module.__doc__) == count, module.__name__
    assert stated(package.__doc__) == sum(counts.values())
    # And no case id appears twice (a duplicate would hide a case)
    ids = [p.id for groups in MATRICES.values() for cases in groups for p in cases]
    assert len(ids) == len(set(ids))


def test_the_ingest_matrix_covers_every_vendor_of_the_registry():
    # A vendor added to the registry without fault cases would pass unnoticed
    from devicegate.vendors import vendor_names

    covered = {target.vendor for group in MATRICES[test_ingest_faults] for case in group
               for target in case.values if hasattr(target, "vendor")}
    assert covered == set(vendor_names())
