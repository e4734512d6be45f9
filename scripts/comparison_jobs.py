"""Print the comparison grid as jobs, one ``kedro run`` command per line, for a scheduler:
the ingestion, one job per (variant, seed), then the summary (``pipelines/comparison/jobs.py``).

    .venv/bin/python scripts/comparison_jobs.py [--env ENV] > jobs.txt
    sed -n "$((SLURM_ARRAY_TASK_ID + 2))p" jobs.txt | bash     # a Slurm array over the runs

Only the job lines go to stdout (Kedro's own log lines go to stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=None, help="Kedro environment (default: Kedro's)")
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # Kedro logs to stdout when first imported
        from mkdseg.pipelines.comparison.jobs import grid_of, job_lines

        lines = job_lines(grid_of(args.env), args.env)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
