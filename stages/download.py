"""DVC stage download@N: one subject's EEG into --out, and the demo's ideal-observer ceiling
(null values for real data and for raw recordings) into --ceiling.

``data.eeg: preprocessed``, the release's two preprocessed-EEG files: data.source: demo
simulates them; things-eeg2 downloads the subject's zip from OSF into the shared download
cache (neurovision.cache_dirs: verified, kept between runs), then extracts only the two
arrays; local links or copies them from data.local_dir (a folder in the release layout).
Either way the arrays are checked (keys, axes, channels, times) with the restricted
unpickler.

``data.eeg: raw``, the subject's raw recordings in the raw layout (ses-01 .. ses-04, a
training and a test file each): demo simulates them (:mod:`neurovision.demo_raw`);
things-eeg2 downloads the subject's archive from Figshare+ into the shared download cache
(verified, kept between runs) and extracts the eight files; local links or copies them from
data.local_dir. preprocess@N reads and checks them.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

import numpy as np

from neurovision import demo, demo_raw, figshare, osf, release
from neurovision.cache_dirs import downloads_dir
from neurovision.erp import check_subject
from neurovision.io import atomic_dir, save_json
from neurovision.retrieval import retrieval_metrics
from neurovision.stage import params_from, parser, run

log = logging.getLogger("neurovision.download")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--subject", type=int, required=True)
    ap.add_argument("--out", required=True, help="directory for the subject's EEG files")
    ap.add_argument("--ceiling", required=True, help="JSON file for the ideal-observer ceiling")
    ap.add_argument("--cache", default=None,
                    help="where verified OSF and Figshare downloads are kept between runs (not a "
                         "DVC output; default: <cache>/downloads, neurovision.cache_dirs)")
    args = ap.parse_args(argv)
    params = params_from(args)
    p = params.data
    cache = Path(args.cache) if args.cache else downloads_dir(params.cache.dir)
    if p.eeg == "raw":
        with atomic_dir(args.out) as tmp:
            if p.source == "demo":
                demo_raw.write_subject(tmp, p.demo, args.subject)
            elif p.source == "things-eeg2":
                name = release.raw_archive(args.subject)
                paths = figshare.fetch_files(p.figshare.article, [name], cache,
                                             p.figshare)
                release.extract_raw_subject(paths[name], args.subject, tmp)
            else:
                release.local_raw_subject(p.local_dir, args.subject, tmp)
        log.info("subject %d (%s): raw recordings, %d files", args.subject, p.source,
                 len(release.raw_layout()))
        # No ideal observer after MNE preprocessing: the same keys, all null (evaluate skips it).
        ceiling = dict.fromkeys(retrieval_metrics(np.zeros((2, 2))), None)
    elif p.source == "demo":
        with atomic_dir(args.out) as tmp:
            ceiling = demo.write_subject(tmp, p.demo, args.subject)
    else:
        with atomic_dir(args.out) as tmp:
            if p.source == "things-eeg2":
                name = release.subject_zip(args.subject)
                paths = osf.fetch_files(release.EEG_COMPONENT, [name], cache, p.osf)
                release.extract_subject(paths[name], args.subject, tmp)
            else:
                release.local_subject(p.local_dir, args.subject, tmp)
            shapes = check_subject(tmp)
        log.info("subject %d (%s): training %s, test %s", args.subject, p.source,
                 *shapes.values())
        # No ideal observer for real data: the same keys, all null (evaluate skips it).
        ceiling = dict.fromkeys(retrieval_metrics(np.zeros((2, 2))), None)
    save_json(args.ceiling, {"source": p.source, "subject": args.subject, **ceiling})


if __name__ == "__main__":
    sys.exit(run(main))
