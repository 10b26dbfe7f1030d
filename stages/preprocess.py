"""DVC stage preprocess@N: subject N's EEG in the release's preprocessed format, in --out.

``data.eeg: preprocessed``: the source already provides the release's two preprocessed
files (download@N checked them); they are hard-linked into --out (copied across file
systems), so every later stage reads one place whatever the source provided.

``data.eeg: raw``: --source holds the subject's raw recordings (ses-01 .. ses-04, a training
and a test file each); they are preprocessed as ``preprocess`` in params.yaml says
(:mod:`neurovision.preprocess`, MNE-Python) into the same two files, plus
``preprocess.json`` (the parameters, library versions and what each session held).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

from neurovision.io import atomic_dir
from neurovision.release import EEG_FILES, link_or_copy
from neurovision.stage import params_from, parser, run

log = logging.getLogger("neurovision.preprocess")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--subject", type=int, required=True)
    ap.add_argument("--source", required=True, help="what download@N wrote for the subject")
    ap.add_argument("--out", required=True, help="directory for the two preprocessed files")
    args = ap.parse_args(argv)
    params = params_from(args)
    p = params.data
    with atomic_dir(args.out) as tmp:
        if p.eeg == "raw":
            from neurovision.preprocess import preprocess_subject  # MNE: only when needed

            summary = preprocess_subject(args.source, tmp, params.preprocess)
            log.info("subject %d: raw recordings preprocessed: training %s, test %s",
                     args.subject, *summary["shapes"].values())
        else:
            for name in EEG_FILES:
                link_or_copy(Path(args.source) / name, tmp / name)
            log.info("subject %d: the release's preprocessed EEG (data.eeg: %s)", args.subject,
                     p.eeg)


if __name__ == "__main__":
    sys.exit(run(main))
