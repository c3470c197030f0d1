"""Mutation score per module from mutmut's result files (`make mutation` prints it after `mutmut run`).

Score = killed / (killed + survived); mutants no test reaches and mutants not checked are counted
apart (a timeout counts as killed, as mutmut does). Survivors are listed by name: `mutmut show NAME` shows
the change. Run from the project root: ``python -m tests.mutation_score [--survivors]``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code



def module_results(root: Path = Path("mutants")) -> dict[str, dict[str, str]]:
    """``{module: {mutant: status}}`` from the ``.meta`` files mutmut writes next to each mutated module."""
    results = {}
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        module = str(meta.relative_to(root)).removesuffix(".meta")
        results[module] = {name: status_by_exit_code[code] for name, code in codes.items()}
    return results


def main(argv: list[str]) -> int:
    results = module_results()
    if not results:
        print("no mutmut results under mutants/: run `make mutation` (or `mutmut run`) first", file=sys.stderr)
        return 1
    print(f"{'module':45} {'score':>7} {'killed':>7} {'survived':>9} {'timeout':>8} {'no tests':>9} {'not checked':>12}")
    for module, statuses in results.items():
        counts = Counter(statuses.values())
        killed, survived = counts["killed"] + counts["timeout"], counts["survived"]
        score = f"{100 * killed / (killed + survived):.1f}%" if killed + survived else "-"
        print(f"{module:45} {score:>7} {killed:>7} {survived:>9} {counts['timeout']:>8} {counts['no tests']:>9} "
              f"{counts['not checked']:>12}")
        if "--survivors" in argv:
            for name, status in statuses.items():
                if status == "survived":
                    print(f"    survived: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
