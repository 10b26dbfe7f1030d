"""DVC stage erp@N: repetition-averaged, standardised ERP features of one subject.

The standardisation statistics come from the training split only and are applied to both.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

import numpy as np

from neurovision.erp import channel_list, check_same_times, erp_features, load_epochs
from neurovision.io import save_json, save_npy
from neurovision.stage import params_from, parser, run
from neurovision.train_fit import standardize

log = logging.getLogger("neurovision.erp")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--subject", type=int, required=True)
    ap.add_argument("--raw", required=True, help="directory with preprocessed_eeg_*.npy")
    ap.add_argument("--out-train", required=True)
    ap.add_argument("--out-test", required=True)
    ap.add_argument("--out-info", required=True)
    args = ap.parse_args(argv)
    p = params_from(args).erp
    raw = Path(args.raw)
    train_ep = load_epochs(raw / "preprocessed_eeg_training.npy")
    train = erp_features(train_ep, p)
    train_times, train_source = train_ep.times, train_ep.source
    channels = channel_list(p, train_ep.ch_names)
    del train_ep
    test_ep = load_epochs(raw / "preprocessed_eeg_test.npy")
    check_same_times(test_ep.times, train_times, test_ep.source, train_source)
    test = erp_features(test_ep, p)
    if p.standardize:
        train, test = standardize(train, test)  # statistics of the training rows only
    save_npy(args.out_test, test.astype(np.float32))
    save_npy(args.out_train, train.astype(np.float32))
    save_json(args.out_info, {
        "subject": args.subject, "channels": list(channels),
        "times": [float(t) for t in test_ep.times], "tmin": p.tmin, "tmax": p.tmax,
        "bin_size": p.bin_size, "baseline": p.baseline, "standardize": p.standardize,
        "n_train": int(train.shape[0]), "n_test": int(test.shape[0]),
        "n_features": int(train.shape[1]),
    })
    log.info("subject %d: %d training and %d test ERPs with %d features", args.subject,
             train.shape[0], test.shape[0], train.shape[1])


if __name__ == "__main__":
    sys.exit(run(main))
