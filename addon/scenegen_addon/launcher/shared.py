"""The shared output folder of a Ray run (standard library only, no ray).

Every node writes its scenes straight into the output folder, so that folder must be the
same one on every node, at the same path (NFS, Lustre, ...). A node that sees another
folder there, or none, would render into a folder nobody merges. So the driver, which holds
the folder's lock, writes a fresh random token under .scenegen/, and every actor reads it
back on its own node before it gets work; an actor that cannot is not used.
"""

import secrets
from pathlib import Path

from ..core import layout


def write_token(output: Path) -> str:
    """A new token in .scenegen/cluster_token (atomic); returns it."""
    token = secrets.token_hex(16)
    layout.write_text(layout.cluster_token_file(output), [token + "\n"])
    return token


def folder_problem(output, token: str) -> str | None:
    """None when this machine sees the driver's output folder at `output` (the token reads
    back); else why not, in words naming the path."""
    path = layout.cluster_token_file(output)
    try:
        found = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return (f"{path} does not exist here: the output folder is not shared with the "
                "driver at this path")
    except OSError as exc:
        return f"{path} cannot be read here: {exc.strerror or exc}"
    if found != token:
        return (f"{path} holds another run's token: this is another folder than the "
                "driver's at the same path")
    return None
