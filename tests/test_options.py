"""One rule for numbers on every command line (launcher/options.py): build, validate, doctor,
bench, export and show parse an integer from ASCII digits only, refuse one outside its range
naming what is allowed, and exit 2 before any work starts. No bpy, nothing rendered."""

import argparse
import math

import pytest
from scenegen_addon.dataset import show
from scenegen_addon.dataset.exports import cli
from scenegen_addon.launcher import bench, doctor, options, validate

PROGRAMS = {"validate.py": validate.main, "doctor.py": doctor.main, "bench.py": bench.main,
            "export.py": cli.main, "show.py": show.main}


def refused(capsys, program: str, argv: list[str], message: str) -> None:
    """`program` exits 2 on argv, saying `message` after `program: error:`."""
    assert PROGRAMS[program](argv) == 2
    err = capsys.readouterr().err
    assert f"{program}: error: " in err and message in err, err


@pytest.mark.parametrize("text", ["42", " 7 ", "+3", "-2", "0"])
def test_ascii_integers_are_numbers(text):
    assert options.whole_number(text) == int(text)


@pytest.mark.parametrize("text", ["３", "٣", "²", "1_000", "1.0", "1e3", "", "x", "0x10"])
def test_anything_else_is_not_an_integer(text):
    with pytest.raises(argparse.ArgumentTypeError, match="use the digits 0-9"):
        options.whole_number(text)


def test_a_range_names_what_is_allowed():
    options.in_range(4, "--scale", 1, 4)
    options.in_range(None, "--scale", 1, 4)  # not given: nothing to check
    for value, message in ((5, "--scale must be 1..4, got 5"), (0, "--jobs must be at least 1"),
                           (math.nan, "got nan"), (math.inf, "got inf")):
        with pytest.raises(options.Refused, match=message) as exc:
            options.in_range(value, message.split()[0], 1, 4 if "scale" in message else None)
        assert exc.value.code == 2


# Every input below was accepted before options.py (int() takes "３" and "1_000"; isdigit()
# takes "３"; a float timeout took nan and -1; export took a negative seed; doctor took
# --samples 0 as "the preset's") or ended in a traceback ("²" passed isdigit, then int()).
NEWLY_REFUSED = [
    ("validate.py", ["DIR", "--jobs", "３"], "argument --jobs: invalid integer '３'"),
    ("validate.py", ["DIR", "--jobs", "²"], "argument --jobs: invalid integer '²'"),
    ("export.py", ["DIR", "--format", "hf", "--out", "OUT", "--jobs", "1_000"],
     "argument --jobs: invalid integer '1_000': use the digits 0-9"),
    ("export.py", ["DIR", "--format", "hf", "--out", "OUT", "--shard-mb", "５"],
     "argument --shard-mb: invalid integer '５'"),
    ("export.py", ["DIR", "--format", "hf", "--out", "OUT", "--seed", "-1"],
     f"--seed must be 0..{options.MAX_SEED}, got -1"),
    ("export.py", ["DIR", "--format", "hf", "--out", "OUT", "--per-type", "３"],
     "--per-type '３': expected N or CATEGORY=N"),
    ("doctor.py", ["--samples", "0"], "--samples must be 1..16777216, got 0"),
    ("doctor.py", ["--n-gpus", "３"], "argument --n-gpus: invalid integer '３'"),
    ("doctor.py", ["--n-gpus", "-1"], "--n-gpus must be at least 0, got -1"),
    ("doctor.py", ["--scenes", "101"], f"--scenes must be 1..{doctor.MAX_SCENES}, got 101"),
    ("doctor.py", ["--timeout", "nan"], "argument --timeout: invalid number of seconds 'nan'"),
    ("doctor.py", ["--timeout", "-1"], "argument --timeout: invalid number of seconds '-1'"),
    ("doctor.py", ["--timeout", "0"], "--timeout must be more than 0 and at most 2592000"),
    ("bench.py", ["--samples", "３"], "argument --samples: invalid integer '３'"),
    ("bench.py", ["--samples", "0"], "--samples must be 1..16777216, got 0"),
    ("bench.py", ["--scenes-per-split", "1_0"], "argument --scenes-per-split: invalid integer"),
    ("bench.py", ["--seed", "-5"], f"--seed must be 0..{options.MAX_SEED}, got -5"),
    ("show.py", ["DIR", "train_00000", "--scale", "３"], "argument --scale: invalid integer '３'"),
]
# refused before too, now in the same words as everywhere else
STILL_REFUSED = [
    ("doctor.py", ["--scenes", "x"], "argument --scenes: invalid integer 'x': use the digits 0-9"),
    ("doctor.py", ["--scenes", "0"], f"--scenes must be 1..{doctor.MAX_SCENES}, got 0"),
    ("validate.py", ["DIR", "--jobs", "0"], "--jobs must be at least 1, got 0"),
    ("export.py", ["DIR", "--format", "hf", "--out", "OUT", "--shard-mb", "0"],
     "--shard-mb must be at least 1, got 0"),
    ("show.py", ["DIR", "train_00000", "--scale", "5"], "--scale must be 1..4, got 5"),
    ("show.py", ["DIR", "train_00000", "--scale", "0"], "--scale must be 1..4, got 0"),
]


@pytest.mark.parametrize("program, argv, message", NEWLY_REFUSED + STILL_REFUSED)
def test_every_program_refuses_a_bad_number_naming_it(tmp_path, capsys, program, argv,
                                                      message):
    """Before anything is read or run: DIR does not even exist."""
    argv = [str(tmp_path / a) if a in ("DIR", "OUT") else a for a in argv]
    refused(capsys, program, argv, message)
    assert list(tmp_path.iterdir()) == []


def test_the_build_refuses_what_the_programs_refuse(capsys):
    """The build's own parser and checks are the same functions (its refusals are tested
    end to end in test_trust.py)."""
    parser = options.build_parser()
    with pytest.raises(options.Refused, match="argument --workers: invalid integer '３'"):
        parser.parse_args(["--output", "x", "--workers", "３"])
    args = parser.parse_args(["--output", "x", "--recycle-after", "0"])
    with pytest.raises(options.Refused, match="--recycle-after must be at least 1, got 0"):
        options.check_options(args)
    capsys.readouterr()


@pytest.mark.parametrize("argv, message", [
    (["--n-gpus", "0", "--workers", "1000000000000000000000"],
     f"--workers must be 1..{options.MAX_WORKERS}, got 1000000000000000000000"),
    (["--n-gpus", "0", "--workers", "100000000000"],
     f"--workers must be 1..{options.MAX_WORKERS}, got 100000000000"),
    (["--workers-per-gpu", "17"], f"--workers-per-gpu must be 1..{options.MAX_WORKERS_PER_GPU}"),
])
def test_the_builds_worker_counts_have_a_largest(capsys, argv, message):
    """Before: an OverflowError or MemoryError making the worker list (exit 70)."""
    args = options.build_parser().parse_args(["--output", "x", *argv])
    with pytest.raises(options.Refused, match=message) as exc:
        options.check_options(args)
    assert exc.value.code == 2
    assert str(options.MAX_WORKERS) in options.build_parser().format_help()


def test_the_doctor_and_the_bench_take_the_builds_ranges():
    for name in ("samples", "n_gpus"):
        assert doctor.NUMBER_RANGES[name] == options.NUMBER_RANGES[name]
    for name in ("samples", "seed"):
        assert bench.NUMBER_RANGES[name] == options.NUMBER_RANGES[name]
    assert bench.NUMBER_RANGES["scenes_per_split"] == (  # 0: use --size
        0, options.NUMBER_RANGES["scenes_per_split"][1])


def test_worker_counts_that_do_not_apply_are_refused():
    options.check_worker_counts(2, None, cpu=True)
    options.check_worker_counts(None, 2, cpu=False)
    with pytest.raises(options.Refused, match="--workers-per-gpu needs GPUs"):
        options.check_worker_counts(None, 2, cpu=True)
    with pytest.raises(options.Refused, match="--workers is for CPU rendering"):
        options.check_worker_counts(2, None, cpu=False)
