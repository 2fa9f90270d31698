"""Which Cycles GPU backend a build uses (`--gpu-backend`), and why (standard library only).

`auto` is resolved once per folder, at its first GPU run, and kept in `.scenegen/run.json`
(`gpu_backend`), so a resumed dataset never switches backends partway through; an explicit
`--gpu-backend` overrides it and is kept in its place. At the first run `auto` takes the
doctor's choice for the run's GPU model measured with the run's Blender version
(launcher.doctor: it leaves Cycles' default only when the other backend was faster by more
than 5%), else the default, "GPU": OptiX where
Cycles lists it, else CUDA (else another GPU type Cycles lists). A `--ray` run's GPUs, which
the doctor did not measure, keep the default.
"""

from collections.abc import Sequence
from dataclasses import dataclass

BACKENDS = {"auto": "GPU", "optix": "OPTIX", "cuda": "CUDA"}  # --gpu-backend -> Cycles device
DEFAULT = BACKENDS["auto"]
DEFAULT_TEXT = "Cycles' default: OptiX where it lists it, else CUDA"


@dataclass(frozen=True)
class Choice:
    device: str  # the workers' Cycles device: "GPU", "OPTIX" or "CUDA"
    why: str

    def record(self) -> dict:
        """What run.json keeps (`gpu_backend`)."""
        return {"device": self.device, "why": self.why}

    def line(self) -> str:
        return f"GPU backend {self.device}: {self.why}"


def kept(run_doc: dict | None) -> Choice | None:
    """The folder's backend from its run.json; None when it has none (a first GPU run)."""
    found = (run_doc or {}).get("gpu_backend")
    if not isinstance(found, dict) or found.get("device") not in BACKENDS.values():
        return None
    return Choice(found["device"], str(found.get("why", "")))


def backend_choice(choices: Sequence[dict], model: str, blender: str) -> dict | None:
    """The doctor's backend figures for a GPU model, if it compared OptiX and CUDA there
    with this Blender version and chose a backend known here (a damaged file: None)."""
    for choice in choices:
        figures = choice.get("backend")
        if (choice.get("model") == model and choice.get("blender_version") == blender
                and isinstance(figures, dict) and figures.get("chosen") in BACKENDS.values()):
            return figures
    return None


def measured_text(model: str, figures: dict) -> str:
    seconds = figures.get("seconds_per_scene", {})
    times = ", ".join(f"{name} {value:.2f} s" for name, value in sorted(seconds.items()))
    return f"the doctor measured {model} ({times} per scene)"


def resolve(asked: str, folder_kept: Choice | None, choices: Sequence[dict],
            models: Sequence[str], blender: str, on_ray: bool) -> Choice:
    """The backend of this run: `asked` is --gpu-backend ("auto", "optix", "cuda"),
    `folder_kept` the folder's earlier choice, `choices` the doctor's figures (`choices` of
    its file), `models` the run's GPU models, `blender` the run's Blender version."""
    if asked != "auto":
        return Choice(BACKENDS[asked], f"--gpu-backend {asked}")
    if folder_kept is not None:
        return Choice(folder_kept.device, "kept from this folder's first GPU run "
                                          f"(.scenegen/run.json: {folder_kept.why})")
    if on_ray:
        return Choice(DEFAULT, f"{DEFAULT_TEXT} (the doctor did not measure a --ray run's "
                               "GPUs)")
    found = {model: backend_choice(choices, model, blender) for model in dict.fromkeys(models)}
    missing = [model for model, figures in found.items() if figures is None]
    if missing:
        return Choice(DEFAULT, f"{DEFAULT_TEXT} (the doctor has not compared OptiX and CUDA "
                               f"on {', '.join(missing)}: headless/doctor.py)")
    picked = {figures["chosen"] for figures in found.values()}
    texts = "; ".join(measured_text(model, figures) for model, figures in found.items())
    if len(picked) > 1:
        return Choice(DEFAULT, f"{DEFAULT_TEXT} (the doctor's choices differ between the "
                               f"models: {texts})")
    device = picked.pop()
    left = [f["default"] for f in found.values() if f.get("default") != device]
    why = (f"faster than {', '.join(sorted(set(left)))} by more than 5%" if left
           else "Cycles' default, not beaten by more than 5%")
    return Choice(device, f"{why}: {texts}")
