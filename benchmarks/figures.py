"""The ending the benchmarks that measure JSON figures share (bench_cluster_scaling,
bench_dispatch, bench_end_stage): print them, and keep them in a file when asked."""

import json


def report(figures: dict, path=None) -> int:
    """Print `figures` as indented JSON and write it to `path` too when given; returns the
    script's exit code."""
    text = json.dumps(figures, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n")
    return 0
