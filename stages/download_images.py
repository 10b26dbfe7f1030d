"""DVC stage download_images: image_metadata.npy and the two image zips into --out."""

from __future__ import annotations

import sys

from neurovision import demo
from neurovision.errors import DataError
from neurovision.io import atomic_dir
from neurovision.stage import params_from, parser, run


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", required=True, help="directory for the image files")
    args = ap.parse_args(argv)
    p = params_from(args).data
    if p.source != "demo":
        raise DataError(f"params: data.source: '{p.source}' is not available yet in this "
                        f"version; use data.source: demo")
    with atomic_dir(args.out) as tmp:
        demo.write_images(tmp, p.demo)


if __name__ == "__main__":
    sys.exit(run(main))
