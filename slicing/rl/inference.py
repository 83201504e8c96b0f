"""Population inference: the trained RLModules of a checkpoint, applied to many cells in batched forward passes.

``RlPolicy.from_checkpoint(path)`` loads each module once from ``path/learner_group/learner/rl_module/<module>``
(RLlib 2.60's layout of ``algo.save_to_path``), with the group mapping stored next to it by ``train.py``.
``allocate(obs [N, 5S], mask [N, S])`` runs one forward pass per module over all of its cells (one pass in total
for a fully shared policy, ``groups=1``), takes the deterministic action (the mean of the action distribution;
for SAC tanh(loc), the squashed mean it was trained with, where RLlib's own ``explore=False`` would pass loc
unsquashed and clip it), maps it to the env's action range as RLlib's env runner does (``normalize_actions``), and
then to shares with the env's ``action_to_shares``. ``version`` is a content hash of the weights.

Roll-out: ``pack_checkpoint(path)`` makes a checkpoint one gzipped tar (what ``POST /v1/models?kind=rl`` and
``slicing models push DIR`` send); ``policy_from_archive(blob)`` unpacks it (safely: no paths outside the target,
no links out, tarfile's ``data`` filter) into a temporary folder, loads it and removes the folder.

Cells of a population are assigned to the trained groups by the training rule on row order (``group_of``):
``groups`` contiguous blocks of the rows given, unless ``groups`` (per row module index) is passed.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from slicing.data.features import ACTION_LIMIT, action_to_shares, obs_dim

MODULES_DIR = ("learner_group", "learner", "rl_module")
ARCHIVE_MAX_BYTES = 256 * 2**20  # a packed checkpoint, at most (the unpacked size is bounded the same way)


class RlPolicy:
    def __init__(self, modules: dict[str, object], n_slices: int) -> None:
        if not modules:
            raise ValueError("RlPolicy: no RLModules")
        self.modules = dict(sorted(modules.items(), key=lambda kv: int(kv[0].rsplit("_", 1)[-1])))
        self.n_slices = int(n_slices)
        h = hashlib.sha256()
        for name, module in self.modules.items():
            h.update(name.encode())
            for key, value in sorted(module.state_dict().items()):
                h.update(key.encode())
                h.update(np.ascontiguousarray(value.detach().cpu().numpy()).tobytes())
        self.version = h.hexdigest()[:12]

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> RlPolicy:
        from ray.rllib.core.rl_module.rl_module import RLModule

        root = Path(path)
        base = root.joinpath(*MODULES_DIR)
        if not base.is_dir():
            raise FileNotFoundError(f"{root}: not an RLlib algorithm checkpoint (no {'/'.join(MODULES_DIR)})")
        names = sorted(p.name for p in base.iterdir() if p.is_dir() and (p / "module_state.pkl").exists())
        modules = {}
        for name in names:
            module = RLModule.from_checkpoint(str((base / name).resolve()))
            module.eval()
            modules[name] = module
        meta_file = root / "slicing_rl.json"
        if meta_file.is_file():
            n_slices = json.loads(meta_file.read_text())["n_slices"]
        else:
            n_slices = next(iter(modules.values())).action_space.shape[0]
        return cls(modules, n_slices)

    @property
    def groups(self) -> int:
        return len(self.modules)

    def actions(self, obs: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """[N, S] deterministic env actions (logits in [-ACTION_LIMIT, ACTION_LIMIT])."""
        from ray.rllib.core.columns import Columns
        from ray.rllib.core.distribution.torch.torch_distribution import TorchSquashedGaussian

        x = np.asarray(obs, dtype=np.float32)
        n = len(x)
        if x.ndim != 2 or x.shape[1] != obs_dim(self.n_slices):
            raise ValueError(f"obs: expected [N, {obs_dim(self.n_slices)}], got {list(x.shape)}")
        if groups is None:
            groups = (np.arange(n) * self.groups) // max(n, 1)
        groups = np.asarray(groups, dtype=np.int64)
        out = np.zeros((n, self.n_slices), dtype=np.float64)
        with torch.no_grad():
            for g, module in enumerate(self.modules.values()):
                rows = np.flatnonzero(groups == g)
                if not len(rows):
                    continue
                fwd = module.forward_inference({Columns.OBS: torch.from_numpy(x[rows])})
                dist = module.get_inference_action_dist_cls().from_logits(fwd[Columns.ACTION_DIST_INPUTS])
                if isinstance(dist, TorchSquashedGaussian):  # SAC: the squashed mean tanh(loc) it was trained on
                    a = dist.low + (torch.tanh(dist.loc) + 1.0) * (dist.high - dist.low) / 2.0
                else:  # PPO: the Gaussian mean
                    a = dist.to_deterministic().sample()
                a = a.cpu().numpy().astype(np.float64)  # in [-1, 1] nominally
                out[rows] = np.clip(-ACTION_LIMIT + (a + 1.0) * ACTION_LIMIT, -ACTION_LIMIT, ACTION_LIMIT)
        return out

    def allocate(self, obs: np.ndarray, mask: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """[N, S] shares (float64, >= 0, 0 on inactive slices, row sums <= 1) for observations ``obs`` [N, 5S]."""
        m = np.asarray(mask, dtype=bool)
        if m.shape != (len(obs), self.n_slices):
            raise ValueError(f"mask: expected {[len(obs), self.n_slices]}, got {list(m.shape)}")
        return action_to_shares(self.actions(obs, groups), m)


def pack_checkpoint(path: str | Path) -> bytes:
    """A checkpoint folder as one gzipped tar (members relative to the folder)."""
    root = Path(path)
    if not root.joinpath(*MODULES_DIR).is_dir():
        raise FileNotFoundError(f"{root}: not an RLlib algorithm checkpoint (no {'/'.join(MODULES_DIR)})")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(root, arcname=".")
    return buf.getvalue()


def policy_from_archive(blob: bytes) -> RlPolicy:
    """Load the policy of a ``pack_checkpoint`` archive; a ``ValueError`` saying what is wrong with it."""
    if not isinstance(blob, bytes | bytearray) or not blob:
        raise ValueError("an RL checkpoint archive: expected the bytes of a gzipped tar (slicing models push DIR)")
    if len(blob) > ARCHIVE_MAX_BYTES:
        raise ValueError(f"an RL checkpoint archive of {len(blob)} bytes; at most {ARCHIVE_MAX_BYTES}")
    folder = Path(tempfile.mkdtemp(prefix="slicing-rl-"))
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
                size = sum(m.size for m in tar.getmembers())
                if size > ARCHIVE_MAX_BYTES:
                    raise ValueError(f"an RL checkpoint archive unpacking to {size} bytes; at most "
                                     f"{ARCHIVE_MAX_BYTES}")
                tar.extractall(folder, filter="data")
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ValueError(f"not a gzipped tar of an RL checkpoint: {type(err).__name__}: {err}") from None
        try:
            return RlPolicy.from_checkpoint(folder)
        except FileNotFoundError as err:
            raise ValueError(str(err).replace(str(folder), "the archive")) from None
        except Exception as err:  # RLlib's own loading errors: a broken module state
            raise ValueError(f"the archive's checkpoint does not load: {type(err).__name__}: {err}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
