"""A bounded, deterministic coverage-guided fuzzing pass (atheris, fixed seed and run
count) over the request parser, the token parser and verifier, checkpoint and note
parsing, and tlog-proof parsing. scripts/fuzz runs the same targets for longer."""

from __future__ import annotations

import pytest

from tests.reliability.fuzz_targets import TARGETS, run_target

pytest.importorskip("atheris")

RUNS = 6_000  # about 10-15 s on a busy 2-core machine


def test_parsers_survive_a_bounded_fuzzing_pass(tmp_path, record_property) -> None:
    result = run_target(
        "all", tmp_path / "corpus", tmp_path / "crashes", [f"-runs={RUNS}", "-seed=1"], 600
    )
    record_property("fuzz_executions", result.runs)
    print(f"\nfuzz: {result.runs} executions in {result.seconds:.1f}s, crashed={result.crashed}")
    assert not result.crashed, f"{result.crash_report}\ninputs: {result.artifacts}"
    assert result.runs >= RUNS


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_seed_is_parsed_without_a_crash(name: str) -> None:
    target = TARGETS[name]
    for seed in target.seeds():
        target.run(seed)
