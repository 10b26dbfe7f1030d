"""DVC stage download_images: image_metadata.npy and the two image zips into --out.

data.source: demo draws them; things-eeg2 downloads them from OSF into the shared download
cache (neurovision.cache_dirs: verified, kept between runs and shared by queued experiments)
and links them in; local links or copies them from data.local_dir.
Either way the metadata is loaded safely and every image it lists is checked to be there.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

from neurovision import demo, osf, release
from neurovision.cache_dirs import downloads_dir
from neurovision.images import check_images
from neurovision.io import atomic_dir
from neurovision.stage import params_from, parser, run

log = logging.getLogger("neurovision.download_images")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", required=True, help="directory for the image files")
    ap.add_argument("--cache", default=None,
                    help="where verified OSF downloads are kept between runs (not a DVC output; "
                         "default: <cache>/downloads, neurovision.cache_dirs)")
    args = ap.parse_args(argv)
    params = params_from(args)
    p = params.data
    cache = Path(args.cache) if args.cache else downloads_dir(params.cache.dir)
    if p.source == "demo":
        with atomic_dir(args.out) as tmp:
            demo.write_images(tmp, p.demo)
        return
    with atomic_dir(args.out) as tmp:
        if p.source == "things-eeg2":
            paths = osf.fetch_files(release.IMAGES_COMPONENT, release.IMAGE_FILES, cache,
                                    p.osf)
            for name, path in paths.items():
                release.link_or_copy(path, tmp / name)
        else:
            release.local_images(p.local_dir, tmp)
        counts = check_images(tmp)
    log.info("images (%s): %d training, %d test", p.source, counts["train"], counts["test"])


if __name__ == "__main__":
    sys.exit(run(main))
