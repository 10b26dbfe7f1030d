"""A contrastive EEG encoder: the small projector of the strongest THINGS-EEG2 decoders.

:class:`ContrastiveMapper` is a scikit-learn estimator (``fit``/``predict``, ``random_state``,
learned attributes end in ``_``) written in PyTorch.  The encoder is

    Linear(n_features -> d) -> x + Dropout(Linear(GELU(x))) -> LayerNorm(d) [-> Linear(d -> k)]

(``d`` = the target dimension ``k`` unless ``dim`` is set, in which case a last linear layer
maps ``d`` to ``k``), trained with a symmetric InfoNCE loss (EEG -> target and target -> EEG)
against L2-normalised targets, with a learnable temperature, by AdamW.  Rows that share a
target (repetitions of an image across subjects, or concept-mean targets) count as positives
of each other, not as negatives.

Early stopping and the choice of checkpoint use a validation split of the *training* rows,
split by group (``fit(X, y, groups=concepts)``: validation concepts are unseen during
training).  The criterion is the validation top-1 in galleries of :data:`VAL_GALLERY` (200,
as the test) validation targets, computed exactly as the expectation over random galleries;
with fewer than 5 x 200 validation targets the galleries hold a fifth of them, so that every
row's rank counts (plain top-1 among all validation targets is too coarse to choose
epochs: README "Decoding quality").  Ties are broken by the validation loss.
Test data never enters ``fit``.

Everything is seeded by ``random_state``: the same seed gives identical predictions, another
seed different ones.  The global torch random state and thread count are restored after
``fit`` and ``predict``; importing this module changes nothing.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Iterator, Sequence
from typing import Optional

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from neurovision.retrieval import l2_normalize

# torch is imported where it is used, so that importing this module (and
# neurovision.mappers) leaves a stage free to configure OpenMP before torch loads.

log = logging.getLogger(__name__)

#: Validation top-1 is scored in galleries of this many targets (the test's 200-way task).
VAL_GALLERY = 200


def val_gallery_size(n_targets: int) -> int:
    """Gallery size of the validation criterion: 200, at most a fifth of the targets, >= 2."""
    return max(2, min(VAL_GALLERY, n_targets // 5))


def expected_top1(scores: np.ndarray, truth: np.ndarray, gallery: int = VAL_GALLERY) -> float:
    """Expected top-1 accuracy when row i's true column ``truth[i]`` competes with
    ``gallery - 1`` distractors drawn at random from the other columns (all of them if there
    are fewer).  Exact: C(lower, n-1) / C(m-1, n-1), with ``lower`` the columns scoring
    strictly below the true one (ties count against)."""
    from scipy.special import gammaln

    scores = np.asarray(scores, dtype=np.float64)
    m = scores.shape[1]
    n = min(gallery, m)
    true = scores[np.arange(len(scores)), truth]
    lower = (scores < true[:, None]).sum(axis=1)
    ok = lower >= n - 1
    safe = np.where(ok, lower, n - 1)
    logp = gammaln(safe + 1) - gammaln(safe - n + 2) - gammaln(m) + gammaln(m - n + 1)
    return float(np.where(ok, np.exp(logp), 0.0).mean())


def group_split(groups: Sequence, val_fraction: float, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, val): scikit-learn's seeded ``GroupShuffleSplit`` holds out
    ``val_fraction`` of the distinct groups (rounded up: at least one, never all) with all
    of their rows."""
    from sklearn.model_selection import GroupShuffleSplit

    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(f"a validation split by group needs at least 2 groups, got "
                         f"{n_groups}")
    n_val = min(n_groups - 1, max(1, math.ceil(val_fraction * n_groups)))
    splitter = GroupShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    tr, va = next(splitter.split(np.zeros(len(groups)), groups=groups))
    return np.sort(tr), np.sort(va)


def device_problem(device: str) -> Optional[str]:
    """Why torch cannot train on ``device`` here, or None when it can."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        return f"not a torch device name ({exc})"
    if dev.type == "cuda" and not torch.cuda.is_available():
        return "torch finds no CUDA device on this machine"
    if dev.type == "mps" and not torch.backends.mps.is_available():
        return "torch finds no MPS device on this machine"
    return None


@contextlib.contextmanager
def _torch_state(seed: int, device: str, threads: Optional[int]) -> Iterator[None]:
    """Seed torch and set its thread count inside the block; restore both afterwards."""
    import torch

    dev = torch.device(device)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    old_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield
    finally:
        if threads is not None:
            torch.set_num_threads(old_threads)


def build_encoder(n_features: int, dim: int, n_out: int, dropout: float):
    """``nn.Sequential``: Linear(n_features, dim), residual (GELU, Linear, Dropout),
    LayerNorm[, Linear(dim, n_out) when dim != n_out]."""
    from torch import nn

    class Residual(nn.Module):
        """``x + block(x)`` (never pickled: fitted weights are stored as numpy arrays)."""

        def __init__(self, block: nn.Module):
            super().__init__()
            self.block = block

        def forward(self, x):
            return x + self.block(x)

    layers = [nn.Linear(n_features, dim),
              Residual(nn.Sequential(nn.GELU(), nn.Linear(dim, dim), nn.Dropout(dropout))),
              nn.LayerNorm(dim)]
    if dim != n_out:
        layers.append(nn.Linear(dim, n_out))
    return nn.Sequential(*layers)


def _soft_infonce(logits, same):
    """Symmetric InfoNCE with soft labels: every row whose target equals row i's is a
    positive of i (``same`` is the boolean equal-target matrix, symmetric)."""
    import torch.nn.functional as F

    labels = same.float()
    labels = labels / labels.sum(dim=1, keepdim=True)
    loss_eeg = -(labels * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_tgt = -(labels * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return (loss_eeg + loss_tgt) / 2


class ContrastiveMapper(BaseEstimator):
    """EEG features -> target embeddings by a small encoder and a symmetric InfoNCE loss.

    Parameters
    ----------
    dim : encoder width ``d``; ``None`` = the target dimension (no output layer).
    dropout : dropout in the residual block.
    batch_size, learning_rate, weight_decay : AdamW mini-batch training.
    epochs : maximum number of passes over the training rows.
    patience : stop after this many epochs without a better validation criterion.
    temperature : initial softmax temperature (learned; ``logit_scale = log(1/T)``).
    val_fraction : share of the groups held out for early stopping.
    device : torch device for training (``"cpu"``, ``"cuda"``, ...); the fitted encoder is
        kept on the CPU and predicts there.
    threads : torch CPU threads during fit/predict; ``None`` leaves torch's setting.
    random_state : seed of the initialisation, dropout, shuffling and validation split.
    verbose : show a progress bar (epoch, loss, validation top-1).
    """

    def __init__(self, dim: Optional[int] = None, dropout: float = 0.3, batch_size: int = 1024,
                 learning_rate: float = 1e-3, weight_decay: float = 0.1, epochs: int = 200,
                 patience: int = 20, temperature: float = 0.07, val_fraction: float = 0.1,
                 device: str = "cpu", threads: Optional[int] = None, random_state: int = 0,
                 verbose: bool = True):
        self.dim = dim
        self.dropout = dropout
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.patience = patience
        self.temperature = temperature
        self.val_fraction = val_fraction
        self.device = device
        self.threads = threads
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True  # y is (n, k): one embedding per row
        tags.target_tags.single_output = False
        return tags

    # ----------------------------------------------------------------------------------
    def fit(self, X, y, groups: Optional[Sequence] = None) -> ContrastiveMapper:
        """Train on rows ``X`` (n, n_features) with targets ``y`` (n, k).

        ``groups`` (n,) labels rows for the validation split (the concept of each row's
        image): whole groups are held out.  ``None`` groups rows by identical target.
        """
        # scikit-learn's own checks: 2-D finite numeric X, as many rows in y, dense only
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, y_numeric=True,
                             ensure_min_samples=2)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        y = self._prepare_targets(y)
        problem = device_problem(self.device)
        if problem:
            raise ValueError(f"device {self.device!r}: {problem}")
        _, target_id = np.unique(y, axis=0, return_inverse=True)
        target_id = target_id.ravel()
        if groups is None:
            groups = target_id
        groups = np.asarray(groups)
        if len(groups) != len(X):
            raise ValueError(f"groups has {len(groups)} entries for {len(X)} rows")
        tr, va = group_split(groups, self.val_fraction, self.random_state)
        self.val_groups_ = np.unique(groups[va])
        with _torch_state(self.random_state, self.device, self.threads):
            self._train(X, y, target_id, tr, va)
        return self

    # The image side, which the two-tower subclass (neurovision.align) replaces: here the
    # targets are fixed unit vectors and the EEG encoder maps into their space.
    name = "contrastive"

    def _prepare_targets(self, y: np.ndarray) -> np.ndarray:
        return l2_normalize(y).astype(np.float32)  # a zero target stays zero: it matches nothing

    def _towers(self, n_features: int, k: int):
        """(EEG encoder, image tower or None) for ``n_features`` EEG inputs and ``k``-d
        targets."""
        return build_encoder(n_features, self.dim or k, k, self.dropout), None

    def _train(self, X, y, target_id, tr, va) -> None:
        import torch
        import torch.nn.functional as F
        from torch import nn
        from tqdm.auto import tqdm

        dev = torch.device(self.device)
        k = y.shape[1]
        enc, tower = self._towers(X.shape[1], k)
        enc = enc.to(dev)
        params = list(enc.parameters())
        if tower is not None:
            tower = tower.to(dev)
            params += list(tower.parameters())
        logit_scale = nn.Parameter(torch.tensor(math.log(1 / self.temperature), device=dev))
        opt = torch.optim.AdamW([{"params": params, "weight_decay": self.weight_decay},
                                 {"params": [logit_scale], "weight_decay": 0.0}],
                                lr=self.learning_rate)

        def targets(rows):
            """Unit vectors the EEG rows are pulled towards: fixed, or through the tower."""
            return yt[rows] if tower is None else F.normalize(tower(yt[rows]), dim=1)
        Xt, yt = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)
        idt = torch.from_numpy(target_id.astype(np.int64)).to(dev)
        tr_t, va_t = torch.from_numpy(tr).to(dev), torch.from_numpy(va).to(dev)
        # validation gallery: the distinct targets of the validation rows
        va_ids, first, va_label = np.unique(target_id[va], return_index=True,
                                            return_inverse=True)
        va_label = va_label.ravel()  # row -> its target's column in the gallery
        va_first = torch.from_numpy(va[first]).to(dev)
        n_gallery = val_gallery_size(len(va_ids))
        va_same = idt[va_t][:, None] == idt[va_t][None, :]
        gen = torch.Generator().manual_seed(int(self.random_state))
        n_batches = max(1, math.ceil(len(tr) / self.batch_size))

        best = (-1.0, math.inf)
        best_state, best_epoch, wait, history = None, 0, 0, []
        bar = tqdm(range(1, self.epochs + 1), desc=self.name, unit="epoch",
                   disable=not self.verbose)
        t0 = time.perf_counter()
        for epoch in bar:
            enc.train()
            if tower is not None:
                tower.train()
            order = tr_t[torch.randperm(len(tr), generator=gen).to(dev)]
            total = 0.0
            for batch in torch.tensor_split(order, n_batches):  # near-equal, none tiny
                z = F.normalize(enc(Xt[batch]), dim=1)
                scale = logit_scale.clamp(0, math.log(100)).exp()
                logits = scale * z @ targets(batch).T
                ids = idt[batch]
                loss = _soft_infonce(logits, ids[:, None] == ids[None, :])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(batch)
            enc.eval()
            if tower is not None:
                tower.eval()
            with torch.no_grad():
                z = F.normalize(enc(Xt[va_t]), dim=1)
                top1 = expected_top1((z @ targets(va_first).T).cpu().numpy(), va_label,
                                     n_gallery)
                scale = logit_scale.clamp(0, math.log(100)).exp()
                vloss = float(_soft_infonce(scale * z @ targets(va_t).T, va_same))
            history.append({"epoch": epoch, "loss": total / len(tr), "val_loss": vloss,
                            "val_top1": top1, "temperature": float(1 / scale)})
            bar.set_postfix(loss=f"{total / len(tr):.3f}", val_top1=f"{top1:.3f}",
                            best=best_epoch, refresh=False)  # drawn at tqdm's own pace
            if (top1, -vloss) > (best[0], -best[1]):
                best, best_epoch, wait = (top1, vloss), epoch, 0
                best_state = copy.deepcopy(enc.state_dict())
                best_tower = None if tower is None else copy.deepcopy(tower.state_dict())
            else:
                wait += 1
                if wait >= self.patience:
                    break
        bar.close()
        # Weights as numpy arrays: the pickle is portable and byte-identical for equal weights
        # (pickled torch tensors carry memory addresses).
        self.encoder_state_ = {name: t.detach().cpu().numpy().copy()
                               for name, t in best_state.items()}
        if tower is not None:
            self.image_state_ = {name: t.detach().cpu().numpy().copy()
                                 for name, t in best_tower.items()}
        self.encoder_dim_ = self.dim or k
        self.n_targets_ = k
        self.logit_scale_ = float(logit_scale.detach().cpu())
        self.best_epoch_ = best_epoch
        self.n_epochs_ = len(history)
        self.val_top1_ = best[0]
        self.history_ = history
        self.n_val_rows_ = len(va)
        log.info("%s: %d epochs in %.1f s, best epoch %d (validation top-1 %.3f in "
                 "galleries of %d of the %d validation targets; %d rows)", self.name, len(history),
                 time.perf_counter() - t0, best_epoch, best[0], n_gallery, len(va_ids), len(va))

    # ----------------------------------------------------------------------------------
    def predict(self, X) -> np.ndarray:
        """L2-normalised embeddings (n, k) of the EEG rows ``X``, float32."""
        import torch
        import torch.nn.functional as F

        check_is_fitted(self, "encoder_state_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        with _torch_state(self.random_state, "cpu", self.threads), torch.no_grad():
            z = self.encoder()(torch.from_numpy(X))
            return F.normalize(z, dim=1).numpy()

    def encoder(self):
        """The fitted encoder as a torch ``nn.Sequential`` on the CPU, in eval mode."""
        import torch

        check_is_fitted(self, "encoder_state_")
        enc, _ = self._towers(self.n_features_in_, self.n_targets_)
        enc.load_state_dict({k: torch.from_numpy(v) for k, v in self.encoder_state_.items()})
        return enc.eval()
