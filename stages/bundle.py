"""DVC stage bundle: the explorer's small deployable bundle (no raw data, no training data).

Per subject the test ERPs, test features, mapper, the gallery it ranked and the per-trial
rankings; once the test-image metadata, the summary metrics and the test images re-encoded
small.  `neurovision app --bundle DIR` runs the explorer from it alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

from neurovision.app.bundle import export_bundle
from neurovision.stage import params_from, parser, run


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--metadata", required=True, help="image_metadata.npy")
    ap.add_argument("--images", required=True,
                    help="directory with test_images.zip or an unpacked test_images/")
    ap.add_argument("--summary", required=True, help="summary metrics JSON")
    ap.add_argument("--results", required=True, help="directory of sub-N/ evaluate outputs")
    ap.add_argument("--eeg", required=True, help="directory of sub-N/ release EEG files")
    ap.add_argument("--info", required=True, help="directory of sub-N.json ERP info files")
    ap.add_argument("--features", required=True, help="directory of sub-N.npy test features")
    ap.add_argument("--models", required=True, help="directory of sub-N.joblib mappers")
    ap.add_argument("--image-size", type=int, default=160,
                    help="longest side of the re-encoded test images, pixels")
    ap.add_argument("--out", required=True, help="bundle directory")
    args = ap.parse_args(argv)
    params = params_from(args)
    export_bundle(args.out, subjects=params.data.subjects, top_k=params.evaluate.top_k,
                  metadata=Path(args.metadata), images=Path(args.images),
                  summary=Path(args.summary),
                  results=Path(args.results), eeg=Path(args.eeg), info=Path(args.info),
                  features=Path(args.features), models=Path(args.models),
                  image_size=args.image_size)


if __name__ == "__main__":
    sys.exit(run(main))
