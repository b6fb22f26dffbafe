"""Many robomimic files as one: `vismanip data merge OUT IN...`.

Collection on many machines (or many collection runs) leaves one file each. Merging copies
every demo into one file, renumbered demo_0.. in the order given, keeps each input's masks
(their demos renamed), and records where each demo came from (`data.attrs["merged_from"]`,
`demo.attrs["source_file"]` / `["source_demo"]`). Inputs must agree on what a demo is: the
same env settings and the same observation keys, shapes and dtypes.

`first=N` keeps each input's first N demos (a subset for a demos-vs-success curve, as
robomimic's "20_percent" filter keys): `vismanip data merge half200.hdf5 half800.hdf5 --first 200`.
A subset's attempts are its own demos: which of the source's failed attempts came before
them the file does not say.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from vismanip.data.hdf5 import demo_names, env_args, image_convention, mask
from vismanip.data.validate import require_valid_dataset, signature
from vismanip.errors import VismanipError
from vismanip.files import atomic_write


def check_compatible(paths: list[Path]) -> tuple[dict, str]:
    """One line for the first input whose env settings or demo layout differ from the
    first input's; returns the shared env_args and image convention."""
    if not paths:
        raise VismanipError("no input datasets given")
    reference: tuple[dict, dict, str] | None = None
    for path in paths:
        require_valid_dataset(path)
        with h5py.File(path, "r") as file:
            args = env_args(file)
            layout = signature(file["data"][demo_names(file)[0]])
            convention = image_convention(file)
        if reference is None:
            reference = (args, layout, convention)
            continue
        first_args, first_layout, first_convention = reference
        for key in sorted(set(args) | set(first_args)):
            if key != "vismanip" and args.get(key) != first_args.get(key):
                raise VismanipError(
                    f"{path}: env_args[{key!r}] is {args.get(key)!r}, but {paths[0]} has "
                    f"{first_args.get(key)!r}; merge only demos of the same env settings"
                )
        for key in sorted(set(layout) | set(first_layout)):
            if layout.get(key) != first_layout.get(key):
                found = layout.get(key, "missing")
                raise VismanipError(
                    f"{path}: {key} is {found}, but {paths[0]} has "
                    f"{first_layout.get(key, 'missing')}; demos must have the same observations"
                )
        if convention != first_convention:
            raise VismanipError(f"{path}: images are {convention}, {paths[0]} {first_convention}")
    assert reference is not None
    return reference[0], reference[2]


def merge_datasets(out: str | Path, inputs: list[str | Path], first: int | None = None) -> int:
    """Write the demos of `inputs` (each input's first `first`, if given) into one dataset
    at `out` (atomically); returns the count."""
    out, paths = Path(out), [Path(p) for p in inputs]
    if first is not None and first < 1:
        raise VismanipError(f"--first must be >= 1, not {first}")
    if out in paths:
        raise VismanipError(f"{out} is also an input; write the merge to a new file")
    args, convention = check_compatible(paths)
    provenance: list[dict] = []
    masks: dict[str, list[str]] = {}
    total = attempts = 0
    with atomic_write(out) as temporary, h5py.File(temporary, "w") as merged:
        data = merged.create_group("data")
        for path in paths:
            with h5py.File(path, "r") as source:
                every = demo_names(source)
                names = every[:first]
                renamed = {}
                for name in names:
                    new = f"demo_{len(data)}"
                    source.copy(source[f"data/{name}"], data, name=new)
                    data[new].attrs["source_file"] = str(path)
                    data[new].attrs["source_demo"] = name
                    total += int(data[new]["actions"].shape[0])
                    renamed[name] = new
                for split in source["mask"] if "mask" in source else []:
                    kept = [renamed[n] for n in mask(source, split) if n in renamed]
                    masks.setdefault(split, []).extend(kept)
                whole = len(names) == len(every)
                attempts += (
                    int(source["data"].attrs.get("attempts", len(every))) if whole else len(names)
                )
                provenance.append(
                    {
                        "path": str(path),
                        "demos": len(names),
                        "of": len(every),
                        "first": renamed[names[0]],
                    }
                )
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(args)
        data.attrs["image_convention"] = convention
        data.attrs["attempts"] = attempts
        data.attrs["merged_from"] = json.dumps(provenance)
        for split, members in masks.items():
            merged.create_dataset(f"mask/{split}", data=np.array(members, dtype="S"))
    return sum(p["demos"] for p in provenance)
