"""A full benchmark run rewrites RESULTS.md; the section pg_scale.py wrote must survive it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import results_md


def test_a_full_render_keeps_the_pg_scale_section_before_all_figures() -> None:
    heading = results_md.PG_SCALE_HEADING
    old = f"# old\n\n## Against the targets\n\nT\n\n{heading}\n\nmeasured\n\n## All figures\n\nF\n"
    new = "# new\n\n## Against the targets\n\nT2\n\n## All figures\n\nF2\n"
    kept = results_md.keep_section(old, new, heading)
    assert kept.index("T2") < kept.index(heading) < kept.index("measured") < kept.index("F2")
    assert "T\n" not in kept and "F\n" not in kept.replace("F2", "")
    assert results_md.keep_section(new, new, heading) == new  # nothing to keep: unchanged
